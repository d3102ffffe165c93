// Calendar invites (text/calendar, RFC 5545): the first VEVENT's title, times, organizer and location, parsed
// here from the part's text and shown as a card on the message. Everything reaches the DOM as text.

import { partUrl } from "./api.js";
import { h } from "./dom.js";

const MAX_ICS = 1024 * 1024; // characters parsed; an invite is a few kilobytes

const dateFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric" });
const timeFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

export const isCalendar = (part) => /^text\/calendar\b/i.test(part.ContentType || "") || /\.ics$/i.test(part.FileName || "");

/** Content lines, unfolded (a CRLF or LF followed by a space or tab continues the line before). */
function contentLines(text) {
  return text.slice(0, MAX_ICS).replace(/\r?\n[ \t]/g, "").split(/\r?\n/).filter(Boolean);
}

/** "DTSTART;TZID=Europe/Berlin:20261210T090000" -> {name, params: {TZID}, value}. Quoted params may hold ':' or ';'. */
function parseLine(line) {
  const params = {};
  let i = 0;
  let name = "";
  while (i < line.length && line[i] !== ";" && line[i] !== ":") name += line[i++];
  while (line[i] === ";") {
    i++;
    let key = "";
    while (i < line.length && line[i] !== "=" && line[i] !== ":" && line[i] !== ";") key += line[i++];
    let value = "";
    if (line[i] === "=") {
      i++;
      while (i < line.length && line[i] !== ";" && line[i] !== ":") {
        if (line[i] === '"') {
          const end = line.indexOf('"', i + 1);
          value += line.slice(i + 1, end < 0 ? line.length : end);
          i = end < 0 ? line.length : end + 1;
        } else value += line[i++];
      }
    }
    params[key.toUpperCase()] = value;
  }
  return { name: name.toUpperCase(), params, value: line.slice(i + 1) };
}

const unescapeText = (value) => value.replace(/\\([\\;,nN])/g, (_, c) => (c === "n" || c === "N" ? "\n" : c));

/** The first VEVENT, as {summary, start, end, organizer, location, method}; null when there is none. */
export function parseEvent(text) {
  let method = "";
  let event = null;
  let depth = 0; // inside a VALARM or other component of the event: its lines are not the event's
  for (const line of contentLines(text)) {
    const { name, params, value } = parseLine(line);
    if (name === "METHOD" && !event) method = value.trim().toUpperCase();
    else if (name === "BEGIN" && value.toUpperCase() === "VEVENT" && !event) event = {};
    else if (!event) continue;
    else if (name === "BEGIN") depth++;
    else if (name === "END" && depth) depth--;
    else if (name === "END" && value.toUpperCase() === "VEVENT") break;
    else if (depth) continue;
    else if (name === "SUMMARY") event.summary = unescapeText(value);
    else if (name === "LOCATION") event.location = unescapeText(value);
    else if (name === "DTSTART") event.start = parseDate(value, params);
    else if (name === "DTEND") event.end = parseDate(value, params);
    else if (name === "ORGANIZER") {
      const mail = value.replace(/^mailto:/i, "");
      event.organizer = params.CN ? `${params.CN} <${mail}>` : mail;
    }
  }
  if (event) event.method = method;
  return event;
}

/** {date: Date, allDay, tzid, wall} from 20261210, 20261210T090000Z or TZID=...:20261210T090000; null if unreadable. */
function parseDate(value, params) {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?(Z)?)?$/i.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, hh, mi, ss, z] = m;
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(hh || 0), Number(mi || 0), Number(ss || 0)];
  if (hh === undefined || params.VALUE === "DATE") return { date: new Date(parts[0], parts[1], parts[2]), allDay: true };
  const wall = Date.UTC(...parts);
  if (z) return { date: new Date(wall), allDay: false };
  const tzid = params.TZID ? params.TZID.replace(/^\//, "") : "";
  if (!tzid) return { date: new Date(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]), allDay: false }; // floating
  const utc = zonedToUtc(wall, tzid);
  if (utc === null) return { date: null, allDay: false, tzid, wall: new Date(wall) };
  return { date: new Date(utc), allDay: false, tzid };
}

/** A wall-clock time in an IANA zone -> epoch ms; null for a zone the browser does not know (a Windows name). */
function zonedToUtc(wall, tzid) {
  let fmt;
  try {
    fmt = new Intl.DateTimeFormat("en-US", { timeZone: tzid, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
  } catch {
    return null;
  }
  const offset = (t) => {
    const p = Object.fromEntries(fmt.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour) % 24, Number(p.minute), Number(p.second)) - t;
  };
  let utc = wall - offset(wall);
  utc = wall - offset(utc); // once more, for a time near a DST change
  return utc;
}

function when(d) {
  if (!d) return "—";
  if (d.allDay) return `${dateFmt.format(d.date)} (all day)`;
  if (!d.date) {
    const w = d.wall;
    const pad = (n) => String(n).padStart(2, "0");
    return `${w.getUTCFullYear()}-${pad(w.getUTCMonth() + 1)}-${pad(w.getUTCDate())} ${pad(w.getUTCHours())}:${pad(w.getUTCMinutes())} ${d.tzid}`;
  }
  return timeFmt.format(d.date) + (d.tzid ? ` (${d.tzid})` : "");
}

/** For an all-day event DTEND is the day after the last: show the last day. */
function lastDay(end) {
  if (!end?.allDay) return end;
  const date = new Date(end.date);
  date.setDate(date.getDate() - 1);
  return { ...end, date };
}

const METHODS = { REQUEST: "Invitation", CANCEL: "Cancelled", REPLY: "Reply", PUBLISH: "Event", COUNTER: "Counter-proposal" };

export function eventCard(messageId, part, event) {
  const rows = [
    ["Starts", when(event.start)],
    ["Ends", event.end ? when(lastDay(event.end)) : "—"],
    ["Organizer", event.organizer || "—"],
    ["Location", event.location || "—"],
  ];
  return h("section", { class: "event-card", "data-part": part.PartID, "aria-label": "Calendar event" },
    h("div", { class: "event-kind" }, METHODS[event.method] || "Calendar event"),
    h("h2", { class: "event-title" }, event.summary || "(untitled event)"),
    h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k.toLowerCase() }, v)])),
    h("a", { class: "button", href: partUrl(messageId, part.PartID, true), download: part.FileName || "invite.ics" }, "Download .ics"));
}
