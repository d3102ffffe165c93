// The keyboard: one table of shortcuts drives the key handler, the shortcuts sheet (`?`) and the tooltips of the
// buttons that have a key, so what the sheet and the tooltips say is always what the keys do.

import { $, h, fill } from "./dom.js";

const KEY_NAMES = { ArrowDown: "↓", ArrowUp: "↑", Escape: "Esc", " ": "Space" };

/** How a key is written for the reader: "↓", "Esc", "Delete", "j". */
export const keyName = (key) => KEY_NAMES[key] ?? key;

const typingIn = (target) =>
  target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

/**
 * Listen for the table's keys. Each entry: {keys: [KeyboardEvent.key...], does: "what it does", run(event),
 * button: "#selector" (whose tooltip names the key), typing: true (also while typing in a field)}.
 * run() may return false to leave the key to the browser.
 */
export function bindShortcuts(table) {
  const byKey = new Map();
  for (const entry of table) for (const key of entry.keys) byKey.set(key, entry);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const entry = byKey.get(event.key);
    if (!entry) return;
    if (typingIn(event.target) && !entry.typing) return;
    if (entry.run(event) === false) return;
    event.preventDefault();
  });
}

/** Every button with a key says so in its tooltip: "Delete this message (Delete)". */
export function labelButtons(table) {
  for (const entry of table) {
    if (!entry.button) continue;
    const button = $(entry.button);
    if (!button) continue;
    const base = button.getAttribute("title") || entry.does;
    button.setAttribute("title", `${base} (${entry.keys.map(keyName).join(" or ")})`);
    button.setAttribute("aria-keyshortcuts", entry.keys.join(" "));
  }
}

/** The sheet: every key the page handles, from the same table. */
export function renderSheet(tbody, table) {
  fill(tbody, table.map((entry) => h("tr", {},
    h("th", { scope: "row" }, entry.keys.map((key, i) => [i ? " " : "", h("kbd", {}, keyName(key))])),
    h("td", {}, entry.does))));
}
