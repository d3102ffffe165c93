// The HTML check and Spam tabs: Mailpit's `html-check` and `sa-check` answers, rendered as text (the data set's
// notes carry a little markup, which is rebuilt here as elements, never parsed as HTML).

import { h, fill, safeHref } from "./dom.js";

// caniemail's platform names (the API names each result "Family Platform (version)").
const PLATFORMS = {
  "desktop-app": "Desktop", "desktop-webmail": "Desktop Webmail", "mobile-webmail": "Mobile Webmail", webmail: "Webmail",
  ios: "iOS", android: "Android", windows: "Windows", macos: "macOS", "windows-mail": "Windows Mail", "outlook-com": "Outlook.com",
};
const CATEGORIES = { html: "HTML", css: "CSS", image: "Image formats", others: "Others" };
const SUPPORT = { yes: "Supported", partial: "Partial", no: "Not supported" };
const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
const order = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

const percent = (value) => `${Math.round(Number(value) || 0)}%`;

function decode(text) {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name) => {
    if (name[0] === "#") {
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

/**
 * The data set's descriptions and notes are small HTML fragments (`<code>`, `<a href>`, `<em>`): each becomes
 * an element built here (a link only with an http(s) address); any other tag is dropped, its text kept.
 */
export function markupNodes(fragment) {
  const root = h("span", {});
  const open = [{ el: root, name: "" }]; // the elements being filled, innermost last, with their source tag
  for (const token of String(fragment || "").split(/(<[^<>]*>)/)) {
    const tag = token.match(/^<(\/?)([a-z]+)\b([^>]*)>$/i);
    const top = open[open.length - 1];
    if (!tag) {
      if (token) top.el.append(decode(token));
      continue;
    }
    const [, closing, tagName, attrs] = tag;
    const name = tagName.toLowerCase();
    if (!["code", "a", "em", "strong", "b", "i"].includes(name)) continue;
    if (closing) {
      if (open.length > 1 && top.name === name) open.pop();
      continue;
    }
    let el;
    if (name === "a") {
      const href = safeHref(decode(attrs.match(/href\s*=\s*"([^"]*)"/i)?.[1] || ""));
      el = href && /^https?:/i.test(href) ? h("a", { href, target: "_blank", rel: "noopener noreferrer" }) : h("span", {});
    } else {
      el = h(name === "b" ? "strong" : name === "i" ? "em" : name, {});
    }
    top.el.append(el);
    open.push({ el, name });
  }
  return root;
}

/** A bar of three parts: supported, partial, not supported. */
function bar(score) {
  const part = (kind, value) => {
    const el = h("span", { class: `bar-${kind}` });
    el.style.width = `${Math.max(0, Math.min(100, Number(value) || 0))}%`;
    return el;
  };
  return h("span", { class: "support-bar", role: "img",
    "aria-label": `${percent(score.Supported)} supported, ${percent(score.Partial)} partial, ${percent(score.Unsupported)} not supported` },
  part("yes", score.Supported), part("partial", score.Partial), part("no", score.Unsupported));
}

/** Each client family, and for each of its platforms the most recently tested version's support. */
function byFamily(results) {
  const families = new Map();
  for (const r of results || []) {
    const platform = PLATFORMS[r.Platform] || r.Platform;
    let family = String(r.Name || r.Family).replace(` (${r.Version})`, "");
    if (family.endsWith(` ${platform}`)) family = family.slice(0, -platform.length - 1);
    if (!families.has(r.Family)) families.set(r.Family, { name: family, platforms: new Map() });
    const platforms = families.get(r.Family).platforms;
    if (!platforms.has(r.Platform)) platforms.set(r.Platform, { label: platform, tests: [] });
    platforms.get(r.Platform).tests.push(r);
  }
  for (const family of families.values()) {
    for (const p of family.platforms.values()) p.tests.sort((a, b) => order.compare(String(a.Version), String(b.Version)));
  }
  return [...families.values()].sort((a, b) => order.compare(a.name, b.name));
}

function supportCell(platform) {
  const latest = platform.tests[platform.tests.length - 1];
  const history = platform.tests.map((t) => `${t.Version}: ${SUPPORT[t.Support] || t.Support}${t.NoteNumber ? ` (note ${t.NoteNumber})` : ""}`);
  return h("li", { class: `support support-${latest.Support}`, title: `Tested versions — ${history.join("; ")}`, "data-platform": latest.Platform },
    h("span", { class: "platform" }, platform.label),
    " ",
    h("span", { class: "verdict" }, SUPPORT[latest.Support] || latest.Support),
    latest.NoteNumber ? h("sup", { class: "note-ref" }, latest.NoteNumber) : null,
    h("span", { class: "version" }, ` ${latest.Version}`));
}

function feature(warning) {
  const score = warning.Score || {};
  const found = Number(score.Found) || 0;
  const families = byFamily(warning.Results);
  const notes = Object.entries(warning.NotesByNumber || {}).sort((a, b) => order.compare(a[0], b[0]));
  return h("details", { class: "feature", "data-slug": warning.Slug },
    h("summary", {},
      h("span", { class: "feature-title" }, warning.Title || warning.Slug),
      found > 1 ? h("span", { class: "found", title: `Found ${found} times` }, `×${found}`) : null,
      bar(score),
      h("span", { class: "feature-score" }, `${percent(score.Supported)} supported`,
        Number(score.Partial) >= 0.5 ? ` · ${percent(score.Partial)} partial` : "")),
    h("div", { class: "feature-body" },
      warning.Description ? h("p", { class: "feature-description" }, markupNodes(warning.Description)) : null,
      families.length
        ? h("table", { class: "support-table" }, h("tbody", {}, families.map((f) => h("tr", {},
          h("th", { scope: "row" }, f.name),
          h("td", {}, h("ul", { class: "support-list" }, [...f.platforms.values()].map(supportCell)))))))
        : h("p", { class: "note" }, "No mail client supports it."),
      notes.length ? h("ol", { class: "feature-notes" }, notes.map(([n, text]) => h("li", { value: n, "data-note": n }, markupNodes(text)))) : null,
      warning.URL && safeHref(warning.URL) ? h("p", { class: "note" },
        h("a", { href: safeHref(warning.URL), target: "_blank", rel: "noopener noreferrer" }, "This feature on caniemail.com")) : null));
}

/** GET api/v1/message/{ID}/html-check: the total first, then each feature found, grouped by kind. */
export function renderHtmlCheck(panel, result) {
  const total = result?.Total || {};
  const warnings = result?.Warnings || [];
  const clients = new Set(Object.values(result?.Platforms || {}).flat()).size;
  const groups = new Map();
  for (const w of warnings) {
    const key = w.Category in CATEGORIES ? w.Category : "others";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(w);
  }
  const sections = Object.keys(CATEGORIES).filter((k) => groups.has(k)).map((k) =>
    h("section", { class: "feature-group", "data-category": k },
      h("h3", {}, `${CATEGORIES[k]} `, h("span", { class: "badge" }, String(groups.get(k).length))),
      groups.get(k).map(feature)));
  fill(panel,
    h("div", { class: "check-summary" },
      h("div", { class: "check-score" },
        h("strong", { id: "html-check-score" }, percent(total.Supported)),
        h("span", {}, " supported")),
      bar(total),
      h("p", { class: "note" },
        `${percent(total.Supported)} supported · ${percent(total.Partial)} partial · ${percent(total.Unsupported)} not supported`,
        ` — ${warnings.length} feature${warnings.length === 1 ? "" : "s"} in ${Number(total.Nodes) || 0} HTML element${total.Nodes === 1 ? "" : "s"}`,
        clients ? `, checked against ${clients} mail clients` : "",
        " (data: ", h("a", { href: "https://www.caniemail.com/", target: "_blank", rel: "noopener noreferrer" }, "caniemail.com"), ")")),
    sections.length ? sections : h("p", { class: "empty" }, "No HTML or CSS features to report."));
}

/** GET api/v1/message/{ID}/sa-check. `Error` (no spamd configured, or it failed) is shown, not hidden. */
export function renderSpamCheck(panel, result, { available = true } = {}) {
  if (result?.Error) {
    fill(panel, h("div", { class: "check-unavailable", role: "note" },
      h("p", { class: "check-error" }, h("strong", {}, available ? "The spam check failed: " : "Spam check unavailable: "), result.Error),
      available ? null : h("p", {}, "To score messages, start mailnest with ", h("code", {}, "--spamassassin HOST:PORT"),
        " (or set ", h("code", {}, "MAILNEST_SPAMASSASSIN"), ") naming a running SpamAssassin ", h("code", {}, "spamd"),
        ", for example ", h("code", {}, "--spamassassin 127.0.0.1:783"), ".")));
    return;
  }
  const score = Number(result?.Score) || 0;
  const rules = (result?.Rules || []).slice().sort((a, b) => (Number(b.Score) || 0) - (Number(a.Score) || 0));
  fill(panel,
    h("div", { class: "check-summary" },
      h("div", { class: "check-score" },
        h("strong", { id: "spam-score" }, score.toFixed(1)),
        h("span", {}, " SpamAssassin score"),
        h("span", { id: "spam-verdict", class: result?.IsSpam ? "verdict-spam" : "verdict-ham" }, result?.IsSpam ? "Spam" : "Not spam")),
      h("p", { class: "note" }, `${rules.length} rule${rules.length === 1 ? "" : "s"} matched; spamd calls a message spam at its required score (5.0 unless configured otherwise).`)),
    rules.length
      ? h("table", { class: "kv spam-rules" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Score"), h("th", { scope: "col" }, "Rule"), h("th", { scope: "col" }, "Description"))),
        h("tbody", {}, rules.map((r) => h("tr", { "data-rule": r.Name, class: Number(r.Score) > 0 ? "rule-up" : Number(r.Score) < 0 ? "rule-down" : "" },
          h("td", { class: "rule-score" }, (Number(r.Score) || 0).toFixed(1)), h("td", {}, r.Name || ""), h("td", {}, r.Description || "")))))
      : h("p", { class: "empty" }, "No rule matched."));
}
