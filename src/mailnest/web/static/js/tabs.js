// What each message tab shows. Pure rendering: data in, DOM out, text only through text nodes.

import { partUrl } from "./api.js";
import { h, fill, safeHref } from "./dom.js";
import { address, fullDate, size } from "./format.js";

const SOURCE_LIMIT = 4 * 1024 * 1024; // characters shown in the Source tab; the .eml download has everything

export function renderHeaders(tbody, headers) {
  const rows = [];
  for (const [name, values] of Object.entries(headers || {})) {
    for (const value of Array.isArray(values) ? values : [values]) {
      rows.push(h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, value)));
    }
  }
  fill(tbody, rows.length ? rows : h("tr", {}, h("td", { colspan: 2 }, "No headers")));
}

/** The raw message as received. Bytes that are not UTF-8 are shown as Latin-1 rather than replaced. */
export function renderSource(pre, bytes) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = new TextDecoder("latin1").decode(bytes);
  }
  if (text.length > SOURCE_LIMIT) {
    text = `${text.slice(0, SOURCE_LIMIT)}\n\n[… ${size(bytes.byteLength)} in all: download the .eml for the rest]`;
  }
  pre.textContent = text;
}

/** MAIL FROM:<> (bounces, delivery reports): the API says "<>"; older servers said "". */
export const isNullSender = (mailFrom) => mailFrom === "<>" || mailFrom === "";

export const nullSender = () =>
  h("span", {}, "<>", h("span", { class: "null-sender", title: "MAIL FROM:<> — the sender of bounces and delivery reports, which must not be answered" }, "null sender"));

/** The message's protocol warnings (RFC 5321/5322 line rules the stored bytes break), as text. */
export function renderWarnings(box, warnings) {
  const items = (warnings || []).filter((w) => w && (w.Code || w.Text));
  box.hidden = items.length === 0;
  fill(box, items.length
    ? [h("h2", {}, items.length === 1 ? "Protocol warning" : `${items.length} protocol warnings`),
      h("ul", {}, items.map((w) => h("li", { "data-code": String(w.Code || "") }, h("code", {}, String(w.Code || "")), " ", String(w.Text || ""))))]
    : []);
}

/** Envelope recipients that the headers do not name are Bcc recipients: say so. */
export function renderEnvelope(dl, message) {
  const env = message.Envelope || {};
  const inHeaders = new Set([...(message.To || []), ...(message.Cc || [])].map((a) => (a.Address || "").toLowerCase()));
  const recipients = (env.RcptTo || []).map((rcpt) => {
    const hidden = !inHeaders.has(String(rcpt).toLowerCase());
    return h("li", {}, rcpt, hidden ? h("span", { class: "bcc-note", title: "In the envelope but in no To or Cc header" }, "Bcc") : null);
  });
  const tls = env.TLS ? `${env.TLS.Version || ""} ${env.TLS.Cipher || ""}`.trim() : "no";
  const items = [
    ["MAIL FROM", isNullSender(env.MailFrom) ? nullSender() : env.MailFrom],
    ["RCPT TO", recipients.length ? h("ul", {}, recipients) : "—"],
    ["HELO/EHLO", env.Helo || "—"],
    ["Peer", env.Peer || "—"],
    ["Received", env.Received ? fullDate(env.Received) : "—"],
    ["Authenticated as", env.AuthUser || "—"],
    ["TLS", tls],
    ["Source", env.Source || "smtp"],
  ];
  const bcc = message.Bcc || [];
  if (bcc.length) items.splice(2, 0, ["Bcc recipients", bcc.map(address).join(", ")]);
  fill(dl, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function renderAttachments(list, message) {
  const items = [];
  const all = [...(message.Attachments || []).map((a) => [a, false]), ...(message.Inline || []).map((a) => [a, true])];
  for (const [a, inline] of all) {
    const calendar = /^text\/calendar\b/i.test(a.ContentType || "");
    const name = a.FileName || (calendar ? "Calendar invite" : inline ? "(inline part)" : "(unnamed)");
    const isImage = /^image\/(png|gif|jpe?g|webp|bmp|avif|svg\+xml)$/i.test(a.ContentType || "");
    const preview = isImage
      ? h("img", { class: "thumb", src: partUrl(message.ID, a.PartID), alt: "", loading: "lazy" })
      : h("span", { class: "nothumb" }, (a.ContentType || "").split("/")[1] || "file");
    items.push(h("li", { "data-part": a.PartID },
      preview,
      h("div", {},
        h("div", { class: "name" }, name),
        h("div", { class: "info" }, `${a.ContentType || "application/octet-stream"} · ${size(a.Size)}${inline ? " · inline" : ""}`
          + (a.ContentID ? ` · cid:${a.ContentID}` : ""))),
      h("a", { class: "button", href: partUrl(message.ID, a.PartID, true), download: a.FileName || (calendar ? "invite.ics" : `part-${a.PartID}`) }, "Download"),
    ));
  }
  fill(list, items.length ? items : h("li", { class: "empty" }, "No attachments"));
}

/**
 * Each link with the words it is written under (`texts`: {url: text}, from /view/ID.json) and a slot for its
 * link-check status, filled by showLinkStatus().
 */
export function renderLinks(list, links, texts = {}) {
  const items = (links || []).map((link) => {
    const href = safeHref(link);
    const text = texts[link];
    return h("li", { dataset: { url: link } },
      text ? h("span", { class: "link-text" }, text) : null,
      href ? h("a", { href, target: "_blank", rel: "noopener noreferrer" }, link) : h("span", {}, link),
      h("span", { class: "link-status", role: "status" }));
  });
  fill(list, items.length ? items : h("li", { class: "empty" }, "No links"));
}

/** The link check's answer ({Links: [{URL, StatusCode, Status}]}) beside each link: OK, the code, or the error. */
export function showLinkStatus(list, result) {
  const byUrl = new Map((result.Links || []).map((r) => [r.URL, r]));
  for (const li of list.querySelectorAll("li[data-url]")) {
    const slot = li.querySelector(".link-status");
    const r = byUrl.get(li.dataset.url);
    if (!r) {
      slot.textContent = "not checked";
      slot.className = "link-status unchecked";
      slot.title = "The link check requests http(s) links only";
      continue;
    }
    const code = Number(r.StatusCode) || 0;
    slot.textContent = code === 0 ? `Error: ${r.Status || "no answer"}` : code < 300 ? "OK" : `${code} ${r.Status || ""}`.trim();
    slot.className = `link-status ${code === 0 || code >= 400 ? "bad" : code < 300 ? "good" : "redirect"}`;
    slot.title = code ? `HTTP ${code} ${r.Status || ""}`.trim() : r.Status || "";
  }
}
