// Boot and wiring: the inbox, the message pane, the top bar, the keyboard, live events.

import { api } from "./api.js";
import { confirmDialog, setupCompose, setupRelease } from "./dialogs.js";
import { $, $$, h, fill, toast } from "./dom.js";
import { fullDate, plural } from "./format.js";
import { setFaviconBadge } from "./favicon.js";
import { Inbox } from "./inbox.js";
import { Live } from "./live.js";
import { MessageView } from "./message.js";
import { setupNotifications } from "./notify.js";
import { bindShortcuts, labelButtons, renderSheet } from "./shortcuts.js";

const state = { mailbox: "", query: "", unread: 0 };

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { mailbox: params.get("mailbox") || "", query: params.get("q") || "", id: params.get("id") || "" };
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.mailbox) params.set("mailbox", state.mailbox);
  if (state.query) params.set("q", state.query);
  if (view.id) params.set("id", view.id);
  const text = params.toString();
  history.replaceState(null, "", text ? `#${text}` : location.pathname);
}

// The instance's --label, written into the page by the server: "mailnest - staging", as Mailpit titles it.
const label = $("#instance-label").hidden ? "" : $("#instance-label").textContent;
const baseTitle = label ? `mailnest - ${label}` : "mailnest";

function updateTitle() {
  document.title = state.unread > 0 ? `(${state.unread}) ${baseTitle}` : baseTitle;
  setFaviconBadge(state.unread);
}

const inbox = new Inbox({
  scroller: $("#list"),
  spacer: $("#list-spacer"),
  rows: $("#list-rows"),
  count: $("#list-count"),
  empty: $("#list-empty"),
  onOpen: (id, summary) => openMessage(id, summary),
  onCounts: (list) => {
    state.unread = list.unread || 0;
    updateTitle();
    // A search counts its own unread, not the mailbox's: "8 matching · 7 unread".
    if (list.error) {
      $("#list-count").textContent = "Search not run";
      return;
    }
    const unread = state.query ? list.matchingUnread : state.unread;
    const matching = state.query ? `${list.total.toLocaleString()} matching` : plural(list.total, "message");
    $("#list-count").textContent = `${matching} · ${unread.toLocaleString()} unread`;
    $("#delete-all-btn .label").textContent = state.query || state.mailbox ? "Delete these" : "Delete all";
    showEmptyState(list);
  },
  onError: (reason) => showSearchError(reason),
});

/** A tab strip wider than the pane scrolls sideways; `data-more` puts a cue on the side with tabs out of view. */
function watchTabStrip() {
  const strip = $(".tabs");
  const update = () => {
    const left = strip.scrollLeft > 1;
    const right = strip.scrollLeft + strip.clientWidth < strip.scrollWidth - 1;
    if (left || right) strip.dataset.more = left && right ? "both" : left ? "left" : "right";
    else delete strip.dataset.more;
  };
  strip.addEventListener("scroll", update, { passive: true });
  new ResizeObserver(update).observe(strip);
  // The selected tab is brought into view (the Text tab of a text-only message may sit past the edge).
  for (const tab of strip.querySelectorAll('[role="tab"]')) {
    new MutationObserver(() => {
      if (tab.getAttribute("aria-selected") === "true") tab.scrollIntoView({ block: "nearest", inline: "nearest" });
      update();
    }).observe(tab, { attributes: true, attributeFilter: ["aria-selected", "hidden"] });
  }
}

// --- the empty view ---------------------------------------------------------------------------------------

const DEFAULT_SMTP = "127.0.0.1:1025"; // `mailnest send`'s default --smtp

/** Where to send mail, from the page's `mailnest-smtp` meta tag ("*:PORT": this page's host); "" when unknown. */
function smtpAddress() {
  const given = document.querySelector('meta[name="mailnest-smtp"]')?.content || "";
  return given.startsWith("*:") ? `${location.hostname}:${given.slice(2)}` : given;
}

/** The line that sends a first message here: `--smtp` only where this server is not at send's default. */
function sendCommand(to) {
  const address = smtpAddress();
  // Not known (the server was given port 0 and did not say which it got): a placeholder, never a guess.
  const smtp = !address ? " --smtp HOST:PORT" : address !== DEFAULT_SMTP && address !== "localhost:1025" ? ` --smtp ${address}` : "";
  return `mailnest send --to ${to}${smtp}`;
}

function setupFirstMail() {
  const address = smtpAddress();
  $("#empty-smtp-at").hidden = !address;
  $("#empty-smtp-unknown").hidden = Boolean(address);
  $("#smtp-address").textContent = address;
  $("#send-command").textContent = sendCommand("dev@example.com");
  $("#copy-send-command").addEventListener("click", async () => {
    const text = $("#send-command").textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied");
    } catch {
      getSelection().selectAllChildren($("#send-command")); // no clipboard access here: selected, to copy by hand
      toast("Selected: copy it with Ctrl+C");
    }
  });
}

/** An empty view says why and, for an empty inbox, how to send the first mail; the message pane steps aside. */
function showEmptyState(list) {
  const empty = !list.error && list.total === 0;
  document.body.classList.toggle("view-empty", empty);
  if (!empty) return;
  $("#empty-title").textContent = state.query ? "No messages match this search"
    : state.mailbox ? `No messages for ${state.mailbox}` : "No messages yet";
  $("#empty-first-mail").hidden = Boolean(state.query); // a search that matches nothing is not an empty inbox
  $("#send-command").textContent = sendCommand(state.mailbox && !state.mailbox.includes(" ") ? state.mailbox : "dev@example.com");
}

/** The server's reason for refusing the query, kept on screen (not a passing toast) until a query is accepted. */
function showSearchError(reason) {
  const box = $("#search-error");
  box.hidden = !reason;
  fill(box, reason ? [h("strong", {}, "Search error: "), reason] : []);
  if (reason) searchInput.setAttribute("aria-invalid", "true");
  else searchInput.removeAttribute("aria-invalid");
  $("#search-form").classList.toggle("invalid", Boolean(reason));
  inbox.render();
}

const openRelease = setupRelease();

const view = new MessageView({
  onRead: (id, read) => {
    inbox.patch(id, { Read: read });
    inbox.refresh();
  },
  onDelete: (id) => deleteWithUndo(id),
  onClose: () => closeMessage(),
  release: (message) => openRelease(message),
  onTags: (id, tags) => inbox.patch(id, { Tags: tags }),
});

function openMessage(id, summary) {
  inbox.setOpen(id);
  view.open(id, summary);
  writeHash();
}

function closeMessage() {
  view.close();
  inbox.setOpen(null);
  writeHash();
}

// --- top bar ------------------------------------------------------------------------------------------

const mailboxSelect = $("#mailbox");
let mailboxTimer = 0;

// A folder is shown through the search language, so the query box says what is shown and can narrow it.
const folderQuery = (name) => `folder:"${name}"`;

// Mailboxes sort by address the way people read them (test-2 before test-10, case ignored), or, chosen at the
// foot of the list and kept in this browser, by their most recent mail (the server's `Latest`). With many of
// them a filter box narrows the list. The counts after each are unread/total, which the group label says.
const MANY_MAILBOXES = 12;
const naturalOrder = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const mailboxFilter = $("#mailbox-filter");
const SORT_COMMAND = "\u0001sort"; // the option that switches the order (never a mailbox: no address has it)
let lastBoxes = { mailboxes: [], folders: [] };
let mailboxOrder = (() => {
  try {
    return localStorage.getItem("mailnest.mailboxOrder") === "recent" ? "recent" : "address";
  } catch {
    return "address";
  }
})();

function sortMailboxes(list) {
  const byAddress = (a, b) => naturalOrder.compare(a.Address, b.Address);
  if (mailboxOrder !== "recent") return list.slice().sort(byAddress);
  const latest = (box) => (box.Latest ? Date.parse(box.Latest) || 0 : 0);
  return list.slice().sort((a, b) => latest(b) - latest(a) || byAddress(a, b));
}

async function loadMailboxes() {
  const [boxes, folders] = await Promise.all([api.mailboxes().catch((err) => err), api.folders().catch((err) => err)]);
  if (boxes instanceof Error && folders instanceof Error) {
    if (boxes.status === 404) mailboxSelect.hidden = true;
    return;
  }
  const mailboxes = Array.isArray(boxes) ? boxes : [];
  lastBoxes = { mailboxes, folders: Array.isArray(folders?.Folders) ? folders.Folders : [] };
  renderMailboxes();
}

const counts = (unread, total) => `${unread ?? 0} unread of ${total ?? 0} message${total === 1 ? "" : "s"}`;

function renderMailboxes() {
  const { folders: filed } = lastBoxes;
  const mailboxes = sortMailboxes(lastBoxes.mailboxes);
  const recent = mailboxOrder === "recent";
  // Only a server that says when each mailbox last got mail can sort by it.
  const canSort = mailboxes.length > 1 && mailboxes.some((b) => "Latest" in b);
  const many = mailboxes.length > MANY_MAILBOXES;
  mailboxFilter.hidden = !many;
  if (!many) mailboxFilter.value = "";
  mailboxFilter.placeholder = `Filter ${mailboxes.length} mailboxes`;
  const needle = mailboxFilter.value.trim().toLowerCase();
  const matches = (b) => b.Address.toLowerCase().includes(needle);
  const matching = needle ? mailboxes.filter(matches).length : mailboxes.length;
  // The open mailbox stays listed (the switcher must show it) even when the filter leaves it out.
  const shown = needle ? mailboxes.filter((b) => matches(b) || b.Address === state.mailbox) : mailboxes;
  const options = [h("option", { value: "" }, "All mailboxes")];
  const title = (box) => counts(box.Unread, box.Total) + (recent && box.Latest ? ` · newest ${fullDate(box.Latest)}` : "");
  const group = shown.map((box) => h("option", { value: box.Address, title: title(box) },
    `${box.Address} (${box.Unread}/${box.Total})`));
  if (state.mailbox && !mailboxes.some((b) => b.Address === state.mailbox)) {
    group.push(h("option", { value: state.mailbox, title: counts(0, 0) }, `${state.mailbox} (0/0)`));
  }
  if (needle && !matching) options.push(h("option", { value: "", disabled: true }, `No mailbox matches “${needle}”`));
  if (group.length) {
    const order = recent ? ", newest mail first" : "";
    const label = needle ? `Mailboxes matching “${needle}”: ${matching} of ${mailboxes.length}${order} (unread/total)` : `Mailboxes${order} (unread/total)`;
    options.push(h("optgroup", { label, id: "mailbox-group" }, group));
  }
  if (filed.length) {
    options.push(h("optgroup", { label: "Folders" }, filed.map((f) => {
      const owner = f.Owner && f.Owner !== "*" ? ` — ${f.Owner}` : "";
      return h("option", { value: `\u0000${f.Name}`, dataset: { folder: String(f.Name) }, title: counts(f.Unread, f.Total) },
        `${f.Name}${owner} (${f.Unread ?? 0}/${f.Total ?? 0})`);
    })));
  }
  if (canSort) {
    options.push(h("optgroup", { label: "Order" }, h("option", { value: SORT_COMMAND, id: "mailbox-sort" },
      recent ? "Sort mailboxes by address" : "Sort mailboxes by most recent mail")));
  }
  fill(mailboxSelect, options);
  syncSwitcher();
}

mailboxFilter.addEventListener("input", renderMailboxes);
mailboxFilter.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    event.stopPropagation(); // clears the filter; the page's Escape (close the message) is not meant
    mailboxFilter.value = "";
    renderMailboxes();
  } else if (event.key === "Enter") {
    // Enter opens the first mailbox that matches.
    event.preventDefault();
    const needle = mailboxFilter.value.trim().toLowerCase();
    const first = $$("#mailbox-group option", mailboxSelect).find((o) => o.value.toLowerCase().includes(needle));
    if (first && first.value !== mailboxSelect.value) {
      mailboxSelect.value = first.value;
      mailboxSelect.dispatchEvent(new Event("change"));
    }
  }
});

/** The switcher shows the folder whose search is in the box, else the mailbox. */
function syncSwitcher() {
  const folder = state.mailbox ? null : Array.from(mailboxSelect.options).find((o) => o.dataset.folder !== undefined && folderQuery(o.dataset.folder) === state.query);
  if (folder) folder.selected = true;
  else mailboxSelect.value = state.mailbox;
}

function scheduleMailboxes() {
  clearTimeout(mailboxTimer);
  mailboxTimer = setTimeout(loadMailboxes, 1000);
}

mailboxSelect.addEventListener("change", () => {
  if (mailboxSelect.value === SORT_COMMAND) {
    // Not a mailbox: the order changes, and the view stays what it was.
    mailboxOrder = mailboxOrder === "recent" ? "address" : "recent";
    try {
      localStorage.setItem("mailnest.mailboxOrder", mailboxOrder);
    } catch {
      /* kept for this page only */
    }
    renderMailboxes();
    return;
  }
  const folder = mailboxSelect.selectedOptions[0]?.dataset.folder;
  closeMessage();
  if (folder !== undefined) {
    state.mailbox = "";
    state.query = folderQuery(folder);
    searchInput.value = state.query;
    inbox.setView({ mailbox: "", query: state.query });
  } else {
    state.mailbox = mailboxSelect.value;
    if (state.query.startsWith("folder:")) {
      state.query = "";
      searchInput.value = "";
    }
    inbox.setView({ mailbox: state.mailbox, query: state.query });
  }
  writeHash();
});

const searchInput = $("#search");
let searchTimer = 0;

function runSearch() {
  clearTimeout(searchTimer);
  const query = searchInput.value.trim();
  if (query === state.query) return;
  state.query = query;
  inbox.setView({ query });
  syncSwitcher();
  writeHash();
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch();
});
searchInput.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 300);
});

const helpButton = $("#search-help-btn");
helpButton.addEventListener("click", () => {
  const help = $("#search-help");
  help.hidden = !help.hidden;
  helpButton.setAttribute("aria-expanded", String(!help.hidden));
});

$("#brand").addEventListener("click", (event) => {
  event.preventDefault();
  searchInput.value = "";
  state.query = "";
  closeMessage();
  inbox.setView({ query: "" });
  syncSwitcher();
});

$("#delete-all-btn").addEventListener("click", async () => {
  const scope = state.query ? `every message matching “${state.query}”` : state.mailbox ? `every message in ${state.mailbox}` : "every message";
  const ok = await confirmDialog({
    title: state.query || state.mailbox ? "Delete these messages?" : "Delete all messages?",
    text: `This deletes ${scope} (${inbox.total.toLocaleString()}). It cannot be undone.`,
    ok: "Delete",
  });
  if (!ok) return;
  try {
    await api.removeMatching(state);
  } catch (err) {
    toast(`Could not delete: ${err.message}`, { error: true });
    return;
  }
  closeMessage();
  inbox.reload();
  scheduleMailboxes();
  toast("Deleted");
});

$("#mark-all-read").addEventListener("click", async () => {
  try {
    await api.setReadMatching(true, state);
  } catch (err) {
    toast(`Could not mark as read: ${err.message}`, { error: true });
    return;
  }
  inbox.refresh();
});

const openCompose = setupCompose({ onSent: () => inbox.refresh() });
$("#compose-btn").addEventListener("click", () => openCompose());

async function loadWebUI() {
  try {
    const info = await api.webui();
    const relay = info?.MessageRelay;
    $("#release-btn").hidden = !(relay && relay.Enabled);
    if (relay?.AllowedRecipients) $("#release-note").textContent = `Send this message, unchanged, through ${relay.SMTPServer || "the relay"}. Allowed recipients: ${relay.AllowedRecipients}`;
    if (info?.HideDeleteAllButton) $("#delete-all-btn").hidden = true;
    if (typeof info?.SpamAssassin === "boolean") view.spamAssassin = info.SpamAssassin;
  } catch {
    $("#release-btn").hidden = true; // no relay, or a server without /api/v1/webui
  }
}

// --- keyboard -----------------------------------------------------------------------------------------

const isLink = (target) => target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement;

/** Every key the page handles. The handler, the `?` sheet and the buttons' tooltips all read this table. */
const SHORTCUTS = [
  { keys: ["j", "ArrowDown"], does: "Next message in the list", run: () => inbox.move(1) },
  { keys: ["k", "ArrowUp"], does: "Previous message in the list", run: () => inbox.move(-1) },
  { keys: ["Enter"], does: "Open the highlighted message", run: (event) => !isLink(event.target) && inbox.openSelected() },
  { keys: ["Delete"], does: "Delete the open message (or, with none open, the highlighted one); undo for a few seconds",
    button: "#delete-btn", run: () => deleteWithUndo(deleteTarget()) },
  { keys: ["u"], does: "Mark the open message read or unread", button: "#toggle-read-btn",
    run: () => (view.id ? view.toggleRead() : false) },
  { keys: ["c"], does: "Compose a new message", button: "#compose-btn", run: () => openCompose() },
  { keys: ["/"], does: "Search", run: () => {
    searchInput.focus();
    searchInput.select();
  } },
  { keys: ["Escape"], does: "Leave the search box; close the search help; close the message", button: "#back-btn", typing: true,
    run: (event) => {
      if (event.target === searchInput) {
        searchInput.blur();
        return false; // and the browser clears the box, as it always did
      }
      if (event.target instanceof HTMLElement && event.target.matches("input, textarea, select, [contenteditable]")) return false;
      if (!$("#search-help").hidden) $("#search-help").hidden = true;
      else if (view.id) closeMessage();
      else return false;
      return true;
    } },
  { keys: ["?"], does: "Show these shortcuts", button: "#shortcuts-btn", run: () => openShortcuts() },
];

function openShortcuts() {
  $("#shortcuts-dialog").showModal();
}

renderSheet($("#shortcuts-table"), SHORTCUTS);
labelButtons(SHORTCUTS);
bindShortcuts(SHORTCUTS);
$("#shortcuts-btn").addEventListener("click", () => openShortcuts());

// Deleting is undoable for a few seconds, truthfully: the DELETE is sent only when the undo window has passed
// (or at once when another delete starts, or the page goes away), so until then the message still exists on the
// server and every other tab still shows it. Here its row is struck through; undo simply forgets the delete.
const UNDO_MS = 5000;
let pendingDelete = null; // {id, timer, notice}

/** The key acts on the message being read; with none open, on the highlighted row. */
function deleteTarget() {
  if (view.id) return view.id;
  return inbox.summaryAt(inbox.selected)?.ID ?? null;
}

function deleteWithUndo(id) {
  if (!id || inbox.pending.has(id)) return;
  commitDelete();
  const index = inbox.indexOf(id);
  inbox.pending.add(id);
  if (view.id === id) closeMessage();
  if (index >= 0 && index === inbox.selected) inbox.select(Math.min(index + 1, inbox.total - 1), { scroll: true });
  else inbox.render();
  const notice = toast("Message deleted", { ms: UNDO_MS, action: { label: "Undo", run: () => undoDelete(id) } });
  pendingDelete = { id, notice, timer: setTimeout(() => commitDelete(), UNDO_MS) };
}

function undoDelete(id) {
  if (!pendingDelete || pendingDelete.id !== id) return;
  clearTimeout(pendingDelete.timer);
  pendingDelete = null;
  inbox.pending.delete(id);
  const index = inbox.indexOf(id);
  if (index >= 0) inbox.select(index);
  else inbox.render();
}

async function commitDelete({ keepalive = false } = {}) {
  if (!pendingDelete) return;
  const { id, timer, notice } = pendingDelete;
  pendingDelete = null;
  clearTimeout(timer);
  notice.dismiss();
  try {
    await api.remove([id], { keepalive });
  } catch (err) {
    inbox.pending.delete(id);
    inbox.render();
    toast(`Could not delete: ${err.message}`, { error: true });
    return;
  }
  if (keepalive) return;
  await inbox.refresh();
  inbox.pending.delete(id);
  inbox.render();
  scheduleMailboxes();
}

// Leaving the page ends the undo window: the delete the reader asked for still happens.
addEventListener("pagehide", () => commitDelete({ keepalive: true }));

// --- live ---------------------------------------------------------------------------------------------

const notifier = setupNotifications({ button: $("#notify-btn"), onOpen: (id) => openMessage(id) });

function onEvent({ Type, Data }) {
  switch (Type) {
    case "new": {
      // Only mail that lands in this view shifts the rows the reader is looking at.
      const rcpts = [...(Data?.To || []), ...(Data?.Cc || []), ...(Data?.Bcc || [])].map((a) => (a.Address || "").toLowerCase());
      const inView = !state.query && (!state.mailbox || rcpts.includes(state.mailbox.toLowerCase()));
      inbox.refresh({ added: inView ? 1 : 0 });
      scheduleMailboxes();
      notifier.announce(Data);
      break;
    }
    case "update":
      inbox.refresh();
      scheduleMailboxes();
      break;
    case "delete":
    case "prune": {
      const ids = Data?.ids || Data?.IDs || [];
      view.deletedElsewhere(ids);
      inbox.refresh();
      scheduleMailboxes();
      break;
    }
    case "truncate":
      closeMessage();
      inbox.reload();
      scheduleMailboxes();
      break;
    case "stats":
      // Stats follow every change, IMAP moves between folders too (which have no event of their own here).
      scheduleMailboxes();
      // Mailpit's stats are global; a mailbox or search view keeps the count its own list reported.
      if (!state.mailbox && !state.query && Data && typeof (Data.Unread ?? Data.unread) === "number") {
        const unread = Data.Unread ?? Data.unread;
        if (unread !== state.unread) inbox.refresh();
      }
      break;
    default:
  }
}

const live = new Live({
  onEvent,
  onPoll: () => {
    inbox.refresh();
    scheduleMailboxes();
  },
  onState: (stateName, detail) => {
    const el = $("#live");
    el.dataset.state = stateName;
    $(".live-label", el).textContent = stateName;
    el.title = stateName === "live" ? `Live updates (${detail})` : detail || stateName;
  },
});

// --- start --------------------------------------------------------------------------------------------

setupFirstMail();
watchTabStrip();
const initial = readHash();
state.mailbox = initial.mailbox;
state.query = initial.query;
searchInput.value = state.query;
inbox.view = { mailbox: state.mailbox, query: state.query };
// The list first: everything else waits until it is on screen, so it does not compete for the server.
inbox.reload().finally(() => {
  if (initial.id) openMessage(initial.id);
  loadMailboxes();
  loadWebUI();
  live.start();
});
$("#list").focus({ preventScroll: true });
