// The message pane: header, actions and tabs. HTML is never put into this page: it is served sanitized by
// /view/{ID}.preview.html under its own CSP and shown in an iframe sandboxed without scripts.

import { api, rawUrl, viewUrl } from "./api.js";
import { $, $$, h, fill, toast } from "./dom.js";
import { address, fileName, fullDate } from "./format.js";
import { eventCard, isCalendar, parseEvent } from "./calendar.js";
import { renderHtmlCheck, renderSpamCheck } from "./checks.js";
import { snapshotPng } from "./snapshot.js";
import {
  isNullSender, nullSender, renderAttachments, renderEnvelope, renderHeaders, renderLinks, renderSource, renderWarnings, showLinkStatus,
} from "./tabs.js";

export class MessageView {
  constructor({ onRead, onDelete, onClose, release, onTags = () => {} }) {
    this.onRead = onRead;
    this.onTags = onTags; // (id, tags): the list shows the new tags
    this.onDelete = onDelete; // (id): the page deletes it, with undo
    this.onClose = onClose;
    this.release = release;
    this.article = $("#message");
    this.frame = $("#html-frame");
    this.message = null;
    this.id = null;
    this.loadedTabs = new Set();
    this.tab = "html";
    this.controller = null;
    this.remoteAllowed = false;
    this.spamAssassin = undefined; // /api/v1/webui's SpamAssassin: false when the server has no spamd

    for (const tab of $$('[role="tab"]', this.article)) tab.addEventListener("click", () => this.show(tab.dataset.tab));
    for (const button of $$("[data-width]", this.article)) button.addEventListener("click", () => this.setWidth(button.dataset.width));
    $("#toggle-read-btn").addEventListener("click", () => this.toggleRead());
    $("#delete-btn").addEventListener("click", () => this.id && this.onDelete(this.id));
    $("#back-btn").addEventListener("click", () => this.onClose());
    $("#load-remote-btn").addEventListener("click", () => this.loadRemote());
    $("#release-btn").addEventListener("click", () => this.release(this.message));
    $("#check-links-btn").addEventListener("click", () => this.checkLinks());
    $("#print-btn").addEventListener("click", () => window.print());
    $("#png-btn").addEventListener("click", () => this.savePng());
    this.frame.addEventListener("load", () => this.frameLoaded());
    this.setupWrap();
  }

  /** Open a message. `summary` (from the list) lets the header show before the API answers. */
  async open(id, summary) {
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    this.id = id;
    this.message = null;
    this.loadedTabs = new Set();
    this.remoteAllowed = false;
    this.frameReady = false;
    this.headerReady = false;
    this.announced = null;
    this.pickedTab = null; // a tab clicked while the message loads is the one shown when it arrives
    delete this.article.dataset.ready;
    this.article.hidden = false;
    $("#message-empty").hidden = true;
    fill($("#msg-events"));
    $("#msg-events").hidden = true;
    document.body.classList.add("show-message");
    // The preview loads once the JSON says there is HTML: a text-only message asks for no preview (it would be
    // a 404) and has no HTML tab.
    this.frame.src = "about:blank";
    $("#load-remote-btn").hidden = true;
    $("#remote-note").hidden = true;
    $("#download-eml").href = rawUrl(id);
    if (summary) this.renderHeader(summary);
    let message;
    try {
      message = await api.message(id, controller.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      this.showMissing(err);
      return;
    }
    if (controller.signal.aborted) return;
    this.message = message;
    this.renderHeader(message);
    $("#download-eml").download = `${fileName(message.Subject, message.ID)}.eml`;
    const count = (message.Attachments || []).length + (message.Inline || []).length;
    $("#attachments-count").textContent = count ? String(count) : "";
    $("#links-count").textContent = "";
    const hasHtml = Boolean(message.HTML);
    $("#no-html").hidden = hasHtml;
    $("#frame-wrap").hidden = !hasHtml;
    $('[role="tab"][data-tab="html"]', this.article).hidden = !hasHtml;
    $('[role="tab"][data-tab="html-check"]', this.article).hidden = !hasHtml;
    if (hasHtml) this.frame.src = viewUrl(id);
    else this.frameReady = true; // nothing to load: the text is the message
    const picked = ["html", "html-check"].includes(this.pickedTab) && !hasHtml ? null : this.pickedTab;
    this.show(picked ?? (hasHtml ? "html" : "text"));
    this.headerReady = true;
    this.maybeReady();
    if (!message.Read) {
      this.setRead(true, { quiet: true }); // a server that does not mark mail read when it is fetched
    } else if (summary && !summary.Read) {
      this.onRead(id, true); // Mailpit's API marked it read on fetching: show that in the list
    }
    this.loadPreviewInfo(controller.signal);
    this.loadEvents(message, controller.signal);
  }

  /** A calendar part (an invite) is shown as its event: title, times, organizer, location. */
  async loadEvents(message, signal) {
    const box = $("#msg-events");
    fill(box);
    box.hidden = true;
    const parts = [...(message.Attachments || []), ...(message.Inline || [])].filter(isCalendar).slice(0, 3);
    for (const part of parts) {
      let event;
      try {
        event = parseEvent(await api.partText(message.ID, part.PartID, signal));
      } catch (err) {
        if (err.name === "AbortError") return;
        continue; // the attachment is still listed, with its download
      }
      if (signal.aborted || this.id !== message.ID) return;
      if (!event) continue;
      box.append(eventCard(message.ID, part, event));
      box.hidden = false;
    }
  }

  close() {
    this.controller?.abort();
    this.id = null;
    this.message = null;
    this.article.hidden = true;
    $("#message-empty").hidden = false;
    this.frame.src = "about:blank";
    document.body.classList.remove("show-message");
  }

  showMissing(err) {
    fill($("#msg-subject"), err.status === 404 ? "This message no longer exists" : `Could not load the message: ${err.message}`);
    fill($("#msg-meta"));
    this.frame.src = "about:blank";
  }

  renderHeader(m) {
    fill($("#msg-subject"), m.Subject || "(no subject)");
    const rows = [["From", address(m.From)]];
    if ((m.To || []).length) rows.push(["To", m.To.map(address).join(", ")]);
    if ((m.Cc || []).length) rows.push(["Cc", m.Cc.map(address).join(", ")]);
    if ((m.Bcc || []).length) rows.push(["Bcc", h("span", {}, m.Bcc.map(address).join(", "), h("span", { class: "bcc-note" }, "envelope only"))]);
    if ((m.ReplyTo || []).length) rows.push(["Reply-To", m.ReplyTo.map(address).join(", ")]);
    rows.push(["Date", fullDate(m.Date || m.Created)]);
    // A summary (from the list) has no envelope: keep what the full message said until it arrives.
    if (m.Envelope && isNullSender(m.Envelope.MailFrom)) rows.push(["Envelope from", nullSender()]);
    fill($("#msg-meta"), rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    renderWarnings($("#msg-warnings"), m.ProtocolWarnings);
    this.renderTags(m.Tags || []);
    $("#toggle-read-btn").textContent = m.Read === false ? "Mark read" : "Mark unread";
  }

  /** The tags, each with a remove button, and a button that adds one (saved with PUT api/v1/tags). */
  renderTags(tags) {
    const chips = tags.map((t) => h("span", { class: "tag editable", "data-tag": t }, t,
      h("button", { type: "button", class: "tag-remove", title: `Remove the tag “${t}”`, "aria-label": `Remove tag ${t}`,
        onclick: () => this.saveTags(tags.filter((x) => x !== t)) }, "×")));
    const input = h("input", { type: "text", id: "tag-input", class: "tag-input", hidden: true, maxlength: 100,
      placeholder: "New tag", "aria-label": "New tag", list: "tag-names", autocomplete: "off" });
    const add = h("button", { type: "button", id: "add-tag-btn", class: "tag-add", title: "Add a tag to this message" }, "+ Tag");
    add.addEventListener("click", () => {
      add.hidden = true;
      input.hidden = false;
      input.focus();
      this.loadTagNames();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const name = input.value.trim();
        if (name) this.saveTags([...tags, name]);
      } else if (event.key === "Escape") {
        event.stopPropagation();
        input.hidden = true;
        add.hidden = false;
        add.focus();
      }
    });
    fill($("#msg-tags"), chips, input, add, h("datalist", { id: "tag-names" }));
  }

  async loadTagNames() {
    try {
      const names = await api.tags();
      fill($("#tag-names"), (names || []).map((n) => h("option", { value: n })));
    } catch {
      /* suggestions only */
    }
  }

  async saveTags(tags) {
    const id = this.id;
    if (!id) return;
    let fresh;
    try {
      await api.setTags([id], tags);
      fresh = await api.message(id); // the server cleans names (and matches existing ones' case): show its list
    } catch (err) {
      toast(`Could not change the tags: ${err.message}`, { error: true });
      return;
    }
    if (this.id !== id || !this.message) return;
    this.message.Tags = fresh.Tags || [];
    this.renderTags(this.message.Tags);
    this.onTags(id, this.message.Tags);
  }

  frameLoaded() {
    if (!this.id || this.frame.getAttribute("src") === "about:blank") return;
    this.frameReady = true;
    this.maybeReady();
  }

  maybeReady() {
    if (!this.frameReady || !this.headerReady || this.announced === this.id) return;
    this.announced = this.id;
    this.article.dataset.ready = this.id;
    performance.mark("mailnest:message-ready");
    document.dispatchEvent(new CustomEvent("mailnest:message-ready", { detail: this.id }));
  }

  async loadPreviewInfo(signal) {
    let info;
    try {
      info = await api.preview(this.id, signal);
    } catch {
      return;
    }
    if (signal.aborted) return;
    this.previewInfo = info;
    $("#links-count").textContent = info.Links?.length ? String(info.Links.length) : "";
    if (info.RemoteImages > 0) {
      $("#remote-note").hidden = false;
      $("#remote-note").textContent = `${info.RemoteImages} remote image${info.RemoteImages === 1 ? "" : "s"} blocked`;
      $("#load-remote-btn").hidden = false;
    }
    if (this.tab === "links") this.renderLinks(info);
  }

  renderLinks(info) {
    const links = info.Links || [];
    renderLinks($("#links-body"), links, info.LinkText || {});
    $("#check-links-btn").hidden = !links.some((l) => /^https?:/i.test(l));
    $("#check-links-btn").disabled = false;
    $("#check-links-btn").textContent = "Check links";
    $("#link-check-summary").textContent = "";
  }

  /** Ask the server to request each link (GET api/v1/message/ID/link-check) and show what each answered. */
  async checkLinks() {
    const id = this.id;
    const button = $("#check-links-btn");
    const summary = $("#link-check-summary");
    button.disabled = true;
    summary.textContent = "Checking…";
    let result;
    try {
      result = await api.linkCheck(id, this.controller?.signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      summary.textContent = `Could not check the links: ${err.message}`;
      button.disabled = false;
      return;
    }
    if (this.id !== id) return;
    showLinkStatus($("#links-body"), result);
    const n = (result.Links || []).length;
    summary.textContent = result.Errors ? `${result.Errors} of ${n} failed` : `All ${n} OK`;
    button.disabled = false;
    button.textContent = "Check again";
  }

  /** Download a PNG of the HTML at the preview's width (Desktop, Tablet or Phone), made in this browser. */
  async savePng() {
    const id = this.id;
    const message = this.message;
    if (!id || !message?.HTML) return;
    const button = $("#png-btn");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const width = Math.round(this.frame.clientWidth) || 800;
      const shot = await snapshotPng(viewUrl(id), width, { remote: this.remoteAllowed });
      if (this.id !== id) return;
      const href = URL.createObjectURL(shot.blob);
      const link = h("a", { href, download: `${fileName(message.Subject, id)}.png`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(href), 60000);
      toast(shot.clipped ? `Saved the first ${shot.height} pixels as PNG: the message is taller` : `Saved as PNG (${shot.width}×${shot.height})`);
    } catch (err) {
      toast(`Could not make a PNG: ${err.message}`, { error: true });
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  loadRemote() {
    this.remoteAllowed = true;
    this.frame.src = viewUrl(this.id, true);
    $("#load-remote-btn").hidden = true;
    $("#remote-note").textContent = "Remote images loaded for this message";
  }

  setWidth(width) {
    $("#frame-wrap").dataset.width = width;
    for (const b of $$("[data-width]", this.article)) b.setAttribute("aria-pressed", String(b.dataset.width === width));
  }

  async show(tab) {
    this.tab = tab;
    for (const t of $$('[role="tab"]', this.article)) t.setAttribute("aria-selected", String(t.dataset.tab === tab));
    for (const p of $$("[data-panel]", this.article)) p.hidden = p.dataset.panel !== tab;
    const m = this.message;
    if (!m) this.pickedTab = tab;
    if (!m || this.loadedTabs.has(tab)) return;
    this.loadedTabs.add(tab);
    const id = m.ID;
    const signal = this.controller?.signal;
    try {
      if (tab === "text") $("#text-body").textContent = m.Text || "(this message has no text part)";
      else if (tab === "headers") renderHeaders($("#headers-table tbody"), await api.headers(id, signal));
      else if (tab === "source") renderSource($("#source-body"), await api.raw(id, signal));
      else if (tab === "envelope") renderEnvelope($("#envelope-body"), m);
      else if (tab === "attachments") renderAttachments($("#attachments-body"), m);
      else if (tab === "links") this.renderLinks(this.previewInfo ?? (await api.preview(id, signal)));
      else if (tab === "html-check") await this.loadCheck(tab, () => api.htmlCheck(id, signal), (panel, r) => renderHtmlCheck(panel, r));
      else if (tab === "spam") {
        await this.loadCheck(tab, () => api.spamCheck(id, signal), (panel, r) => renderSpamCheck(panel, r, { available: this.spamAssassin !== false }));
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      this.loadedTabs.delete(tab);
      toast(`Could not load ${tab}: ${err.message}`, { error: true });
    }
  }

  /** A check tab asks the server when it is opened (never before); a failure is said in the tab, with a retry. */
  async loadCheck(tab, ask, render) {
    const id = this.id;
    const panel = $(`#${tab}-body`);
    panel.setAttribute("aria-busy", "true");
    fill(panel, h("p", { class: "note" }, tab === "spam" ? "Asking SpamAssassin…" : "Checking the HTML…"));
    let result;
    try {
      result = await ask();
    } catch (err) {
      if (err.name === "AbortError") throw err;
      this.loadedTabs.delete(tab);
      fill(panel, h("p", { class: "check-error", role: "alert" }, `Could not run the check: ${err.message} `,
        h("button", { type: "button", onclick: () => this.show(tab) }, "Try again")));
      return;
    } finally {
      panel.removeAttribute("aria-busy");
    }
    if (this.id !== id) return;
    render(panel, result);
    panel.dataset.loaded = id;
  }

  async setRead(read, { quiet = false } = {}) {
    if (!this.id) return;
    const id = this.id;
    try {
      await api.setRead([id], read);
    } catch (err) {
      if (!quiet) toast(`Could not change the read state: ${err.message}`, { error: true });
      return;
    }
    if (this.message && this.message.ID === id) {
      this.message.Read = read;
      $("#toggle-read-btn").textContent = read ? "Mark unread" : "Mark read";
    }
    this.onRead(id, read);
  }

  toggleRead() {
    return this.setRead(this.message ? !this.message.Read : false);
  }

  /** The Source tab wraps long lines, or shows them as they are (scrolling sideways); the choice is kept. */
  setupWrap() {
    const button = $("#wrap-source-btn");
    const apply = (wrap) => {
      button.setAttribute("aria-pressed", String(wrap));
      $("#source-body").classList.toggle("nowrap", !wrap);
    };
    let stored = null;
    try {
      stored = localStorage.getItem("mailnest.sourceWrap");
    } catch {
      /* storage refused: wrap, as by default */
    }
    apply(stored !== "off");
    button.addEventListener("click", () => {
      const wrap = button.getAttribute("aria-pressed") !== "true";
      apply(wrap);
      try {
        localStorage.setItem("mailnest.sourceWrap", wrap ? "on" : "off");
      } catch {
        /* kept for this page only */
      }
    });
  }

  /** Another client deleted what we show. */
  deletedElsewhere(ids) {
    if (this.id && ids.includes(this.id)) this.close();
  }
}
