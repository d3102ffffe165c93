// Turning API values into short, readable text.

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const yearFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** "1 message", "2 messages", "1,024 messages": a count and its noun, in the reader's number format. */
export function plural(count, noun, nouns = `${noun}s`) {
  const n = Number(count) || 0;
  return `${n.toLocaleString()} ${n === 1 ? noun : nouns}`;
}

/** Inbox time: the clock today, the day this year, the date before that. */
export function shortDate(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  if (sameDay(d, now)) return timeFmt.format(d);
  if (d.getFullYear() === now.getFullYear()) return dayFmt.format(d);
  return yearFmt.format(d);
}

export function fullDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso ?? "") : fullFmt.format(d);
}

export function size(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "Name <addr>" or the bare address. */
export function address(a) {
  if (!a) return "";
  const addr = a.Address || "";
  return a.Name ? (addr ? `${a.Name} <${addr}>` : a.Name) : addr;
}

/** What the inbox shows for a sender or recipient: the name when there is one. */
export function shortAddress(a) {
  if (!a) return "";
  return a.Name || a.Address || "";
}

export function addressList(list) {
  return (list || []).map(address).join(", ");
}

/**
 * "Ann <a@x.org>, b@y.org" -> [{Email, Name}]. Commas inside quotes or angle brackets do not split.
 */
export function parseAddresses(text) {
  const out = [];
  let current = "";
  let quoted = false;
  let angle = false;
  for (const ch of String(text || "")) {
    if (ch === '"') quoted = !quoted;
    else if (ch === "<" && !quoted) angle = true;
    else if (ch === ">" && !quoted) angle = false;
    if ((ch === "," || ch === ";") && !quoted && !angle) {
      out.push(current);
      current = "";
    } else current += ch;
  }
  out.push(current);
  return out
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const m = part.match(/^(.*?)<([^<>]+)>\s*$/);
      if (m) return { Email: m[2].trim(), Name: m[1].trim().replace(/^"(.*)"$/, "$1") };
      return { Email: part, Name: "" };
    });
}

/** A file name for a download: no path separators or characters file systems refuse. */
export function fileName(text, fallback) {
  const cleaned = String(text || "").replace(/[\\/:*?"<>|\x00-\x1f]+/g, "_").trim().slice(0, 120);
  return cleaned || fallback;
}
