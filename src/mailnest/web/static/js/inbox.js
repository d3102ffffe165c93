// The message list: virtualised, so 100,000 messages cost the same as 100. Only the rows in view exist in
// the DOM; pages of summaries are fetched by offset as the reader scrolls, and dropped when the view changes.

import { api } from "./api.js";
import { h, fill, toast } from "./dom.js";
import { plural, shortAddress, shortDate } from "./format.js";

const PAGE = 50; // index.html preloads the first page: keep its limit in step
const OVERSCAN = 8;

export class Inbox {
  constructor({ scroller, spacer, rows, count, empty, onOpen, onCounts, onError }) {
    this.scroller = scroller;
    this.spacer = spacer;
    this.rows = rows;
    this.countEl = count;
    this.emptyEl = empty;
    this.onOpen = onOpen;
    this.onCounts = onCounts;
    this.onError = onError; // (reason | null): the server refused the view's query (400), or accepts it again
    this.error = null;
    this.view = { mailbox: "", query: "" };
    this.total = 0; // messages matching the view
    this.pages = new Map(); // page index -> [Summary]
    this.inflight = new Map(); // page index -> {promise, controller}
    this.generation = 0; // bumps whenever cached pages stop describing the server
    this.selected = -1;
    this.selectedId = null;
    this.openId = null;
    this.pending = new Set(); // IDs deleted here whose DELETE waits for the undo window to pass
    this.rowHeight = 72;
    this.loaded = false;
    this.frame = 0;
    this.refreshing = null;
    this.refreshAgain = false;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
    scroller.addEventListener("click", (event) => {
      const row = event.target.closest(".row");
      if (row) this.activate(Number(row.dataset.index));
    });
  }

  /** Show a different mailbox or search; starts at the top. */
  async setView(view) {
    this.view = { ...this.view, ...view };
    this.selected = -1;
    this.selectedId = null;
    this.scroller.scrollTop = 0;
    await this.reload();
  }

  /** Forget every cached page and fetch the first one. */
  async reload() {
    const generation = ++this.generation;
    this.abortAll();
    const first = await this.fetchPage(0, generation);
    if (generation !== this.generation) return;
    if (first) {
      this.pages = new Map([[0, first.messages]]);
      this.setTotals(first);
    } else {
      this.pages = new Map(); // a refused search shows an empty list and says why (toast), not stale rows
      this.setTotals({ messages_count: 0, total: 0, unread: 0 });
    }
    this.loaded = true;
    this.render();
    document.dispatchEvent(new CustomEvent("mailnest:list-loaded", { detail: { ok: Boolean(first) } }));
  }

  /**
   * Re-read the pages in view after a change on the server (new mail, deletes, read flags), keeping the
   * scroll position; bursts of events collapse into one refresh at a time.
   */
  refresh({ added = 0 } = {}) {
    if (added && this.scroller.scrollTop > 0) {
      // Keep the rows the reader is looking at in place while new mail lands above them.
      this.scroller.scrollTop += added * this.rowHeight;
    }
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.refreshAgain = false;
          const generation = ++this.generation;
          this.abortAll();
          const wanted = this.visiblePages();
          if (!wanted.includes(0)) wanted.unshift(0);
          const results = await Promise.all(wanted.map((p) => this.fetchPage(p, generation)));
          if (generation !== this.generation) continue;
          const pages = new Map();
          results.forEach((result, i) => result && pages.set(wanted[i], result.messages));
          const latest = results.find(Boolean);
          if (!latest) return;
          this.pages = pages;
          this.setTotals(latest);
          this.render();
        } while (this.refreshAgain);
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  async fetchPage(index, generation, signal) {
    try {
      return await api.list({ ...this.view, start: index * PAGE, limit: PAGE, signal });
    } catch (err) {
      if (err.name !== "AbortError" && generation === this.generation) {
        // A refused query stays on screen (onError) until a query is accepted; other failures pass as a toast.
        if (err.status === 400) this.setError(err.message);
        else toast(`Could not load messages: ${err.message}`, { error: true });
      }
      return null;
    }
  }

  abortAll() {
    for (const request of this.inflight.values()) request.controller.abort();
    this.inflight.clear();
  }

  /**
   * Fetch the pages the rows in view need. Waits a moment first and drops requests for pages scrolled past
   * meanwhile, so a fling through 100,000 rows asks for the page it stops on, not every page on the way.
   */
  fetchMissing(pages) {
    clearTimeout(this.fetchTimer);
    this.fetchTimer = setTimeout(() => {
      const wanted = new Set(this.visiblePages());
      for (const [index, request] of this.inflight) {
        if (!wanted.has(index)) {
          request.controller.abort();
          this.inflight.delete(index);
        }
      }
      for (const index of pages) if (wanted.has(index)) this.ensurePage(index);
    }, this.inflight.size || pages.some((p) => p > 1) ? 60 : 0);
  }

  ensurePage(index) {
    if (this.pages.has(index) || this.inflight.has(index)) return;
    const generation = this.generation;
    const controller = new AbortController();
    const promise = this.fetchPage(index, generation, controller.signal).then((result) => {
      if (this.inflight.get(index)?.controller === controller) this.inflight.delete(index);
      if (generation !== this.generation || !result) return;
      this.pages.set(index, result.messages);
      this.setTotals(result);
      this.schedule();
    });
    this.inflight.set(index, { promise, controller });
  }

  setError(reason) {
    if (reason === this.error) return;
    this.error = reason;
    this.onError?.(reason);
  }

  setTotals(result) {
    if (result.messages) this.setError(null);
    this.total = result.messages_count ?? result.total ?? 0;
    this.unread = result.unread ?? 0; // unread in the mailbox (or all mail), before any query
    // Unread among what the query matches: what a search's count must say (older servers: the view's figure).
    this.matchingUnread = result.messages_unread ?? this.unread;
    this.viewTotal = result.total ?? this.total;
    this.tags = result.tags || [];
    if (this.selectedId) {
      const index = this.indexOf(this.selectedId);
      if (index >= 0) this.selected = index;
    }
    this.selected = Math.min(this.selected, this.total - 1);
    this.onCounts?.(this);
  }

  summaryAt(index) {
    const page = this.pages.get(Math.floor(index / PAGE));
    return page ? page[index % PAGE] : undefined;
  }

  indexOf(id) {
    for (const [p, list] of this.pages) {
      const i = list.findIndex((s) => s.ID === id);
      if (i >= 0) return p * PAGE + i;
    }
    return -1;
  }

  /** Change a cached row in place (read flag after opening) without waiting for the server. */
  patch(id, changes) {
    for (const list of this.pages.values()) {
      const summary = list.find((s) => s.ID === id);
      if (summary) Object.assign(summary, changes);
    }
    this.schedule();
  }

  visibleRange() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.total - 1, Math.ceil((top + height) / this.rowHeight) + OVERSCAN);
    return [first, last];
  }

  visiblePages() {
    const [first, last] = this.visibleRange();
    const pages = [];
    for (let p = Math.floor(first / PAGE); p <= Math.floor(Math.max(first, last) / PAGE); p++) pages.push(p);
    return pages;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const css = parseFloat(getComputedStyle(this.scroller).getPropertyValue("--row-h"));
    if (css > 0) this.rowHeight = css;
    this.spacer.style.height = `${this.total * this.rowHeight}px`;
    this.emptyEl.hidden = !this.loaded || this.total > 0 || Boolean(this.error);
    const [first, last] = this.visibleRange();
    const rows = [];
    const missing = new Set();
    for (let i = first; i <= last; i++) {
      const summary = this.summaryAt(i);
      if (!summary) missing.add(Math.floor(i / PAGE));
      rows.push(this.renderRow(i, summary));
    }
    if (missing.size) this.fetchMissing([...missing]);
    fill(this.rows, rows);
    if (!this.firstRendered && this.loaded) {
      this.firstRendered = true;
      performance.mark("mailnest:inbox-ready");
      document.dispatchEvent(new CustomEvent("mailnest:inbox-ready"));
    }
  }

  renderRow(index, s) {
    const top = `${index * this.rowHeight}px`;
    if (!s) {
      const row = h("div", { class: "row placeholder", "data-index": index, "aria-busy": "true" },
        h("div", { class: "line1" }, h("span", { class: "from" }, "\u00a0")), h("span", { class: "subj" }, "\u00a0"));
      row.style.top = top;
      return row;
    }
    const classes = ["row"];
    if (!s.Read) classes.push("unread");
    if (index === this.selected) classes.push("selected");
    if (s.ID === this.openId) classes.push("open");
    const deleting = this.pending.has(s.ID);
    if (deleting) classes.push("deleting");
    const to = (s.To || []).concat(s.Cc || []).map(shortAddress).filter(Boolean);
    const row = h("div", {
      class: classes.join(" "), role: "option", "data-index": index, "data-id": s.ID,
      "aria-selected": index === this.selected ? "true" : "false",
      title: deleting ? "Deleted: undo is still possible" : null,
    },
      h("div", { class: "line1" },
        h("span", { class: "from", title: s.From?.Address || "" }, shortAddress(s.From) || "(no sender)"),
        h("span", { class: "time", title: s.Created || "" },
          s.Attachments > 0 ? h("span", { class: "clip", title: plural(s.Attachments, "attachment"), "aria-label": "attachments" }) : null,
          shortDate(s.Created))),
      h("span", { class: "subj" }, s.Subject || "(no subject)"),
      h("span", { class: "line3" },
        (s.Tags || []).map((t) => h("span", { class: "tag" }, t)),
        to.length ? h("span", { class: "to" }, `To: ${to.join(", ")}`) : null,
        s.Snippet ? `\u2014 ${s.Snippet}` : ""),
    );
    row.style.top = top;
    return row;
  }

  // --- selection and keyboard ----------------------------------------------------------------------

  select(index, { scroll = true } = {}) {
    if (this.total === 0) return;
    this.selected = Math.max(0, Math.min(this.total - 1, index));
    this.selectedId = this.summaryAt(this.selected)?.ID ?? null;
    if (scroll) this.scrollTo(this.selected);
    this.render(); // now, not on the next frame: the highlight must follow the key at once
  }

  move(delta) {
    this.select(this.selected < 0 ? 0 : this.selected + delta);
  }

  scrollTo(index) {
    const top = index * this.rowHeight;
    const bottom = top + this.rowHeight;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (bottom > this.scroller.scrollTop + this.scroller.clientHeight) {
      this.scroller.scrollTop = bottom - this.scroller.clientHeight;
    }
  }

  activate(index) {
    this.select(index, { scroll: false });
    const summary = this.summaryAt(index);
    if (summary) this.onOpen(summary.ID, summary);
  }

  openSelected() {
    if (this.selected >= 0) this.activate(this.selected);
  }

  setOpen(id) {
    this.openId = id;
    this.schedule();
  }
}
