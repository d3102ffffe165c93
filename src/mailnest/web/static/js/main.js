// Boot and wiring: the inbox, the message pane, the top bar, the keyboard, live events.

import { api } from "./api.js";
import { confirmDialog, setupCompose, setupRelease } from "./dialogs.js";
import { $, h, fill, toast } from "./dom.js";
import { Inbox } from "./inbox.js";
import { Live } from "./live.js";
import { MessageView } from "./message.js";

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

function updateTitle() {
  document.title = state.unread > 0 ? `(${state.unread}) mailnest` : "mailnest";
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
    const matching = state.query ? `${list.total.toLocaleString()} matching` : `${list.total.toLocaleString()} messages`;
    $("#list-count").textContent = `${matching} · ${state.unread.toLocaleString()} unread`;
    $("#delete-all-btn").textContent = state.query || state.mailbox ? "Delete these" : "Delete all";
  },
});

const openRelease = setupRelease();

const view = new MessageView({
  onRead: (id, read) => {
    inbox.patch(id, { Read: read });
    inbox.refresh();
  },
  onDeleted: (id) => {
    const index = inbox.indexOf(id);
    closeMessage();
    inbox.refresh().then(() => {
      if (index >= 0) inbox.select(Math.min(index, inbox.total - 1));
    });
    toast("Message deleted");
  },
  onClose: () => closeMessage(),
  release: (message) => openRelease(message),
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

async function loadMailboxes() {
  const [boxes, folders] = await Promise.all([api.mailboxes().catch((err) => err), api.folders().catch((err) => err)]);
  if (boxes instanceof Error && folders instanceof Error) {
    if (boxes.status === 404) mailboxSelect.hidden = true;
    return;
  }
  const options = [h("option", { value: "" }, "All mailboxes")];
  const mailboxes = Array.isArray(boxes) ? boxes : [];
  for (const box of mailboxes) {
    options.push(h("option", { value: box.Address }, `${box.Address} (${box.Unread}/${box.Total})`));
  }
  if (state.mailbox && !mailboxes.some((b) => b.Address === state.mailbox)) {
    options.push(h("option", { value: state.mailbox }, `${state.mailbox} (0/0)`));
  }
  const filed = Array.isArray(folders?.Folders) ? folders.Folders : [];
  if (filed.length) {
    options.push(h("optgroup", { label: "Folders" }, filed.map((f) => {
      const owner = f.Owner && f.Owner !== "*" ? ` — ${f.Owner}` : "";
      return h("option", { value: `\u0000${f.Name}`, dataset: { folder: String(f.Name) } },
        `${f.Name}${owner} (${f.Unread ?? 0}/${f.Total ?? 0})`);
    })));
  }
  fill(mailboxSelect, options);
  syncSwitcher();
}

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
  } catch {
    $("#release-btn").hidden = true; // no relay, or a server without /api/v1/webui
  }
}

// --- keyboard -----------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]")) return;
  const target = event.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  if (typing) {
    if (event.key === "Escape" && target === searchInput) searchInput.blur();
    return;
  }
  switch (event.key) {
    case "j":
    case "ArrowDown":
      inbox.move(1);
      break;
    case "k":
    case "ArrowUp":
      inbox.move(-1);
      break;
    case "Enter":
      if (target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement) return;
      inbox.openSelected();
      break;
    case "Delete":
      deleteSelected();
      break;
    case "/":
      searchInput.focus();
      searchInput.select();
      break;
    case "Escape":
      if (!$("#search-help").hidden) $("#search-help").hidden = true;
      else if (view.id) closeMessage();
      break;
    default:
      return;
  }
  event.preventDefault();
});

async function deleteSelected() {
  const summary = inbox.summaryAt(inbox.selected);
  const id = summary?.ID ?? view.id;
  if (!id) return;
  const index = inbox.selected;
  try {
    await api.remove([id]);
  } catch (err) {
    toast(`Could not delete: ${err.message}`, { error: true });
    return;
  }
  if (view.id === id) closeMessage();
  await inbox.refresh();
  if (index >= 0) inbox.select(Math.min(index, inbox.total - 1));
  toast("Message deleted");
}

// --- live ---------------------------------------------------------------------------------------------

function onEvent({ Type, Data }) {
  switch (Type) {
    case "new": {
      // Only mail that lands in this view shifts the rows the reader is looking at.
      const rcpts = [...(Data?.To || []), ...(Data?.Cc || []), ...(Data?.Bcc || [])].map((a) => (a.Address || "").toLowerCase());
      const inView = !state.query && (!state.mailbox || rcpts.includes(state.mailbox.toLowerCase()));
      inbox.refresh({ added: inView ? 1 : 0 });
      scheduleMailboxes();
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
    el.textContent = stateName;
    el.title = stateName === "live" ? `Live updates (${detail})` : detail || stateName;
  },
});

// --- start --------------------------------------------------------------------------------------------

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
