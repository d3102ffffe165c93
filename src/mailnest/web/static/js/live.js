// Live updates: the websocket /api/events (Mailpit's), else the SSE stream /api/v1/events, else polling.
// Every event arrives as {Type, Data}; the page decides what to re-read.

const POLL_MS = 3000;
const RETRY_LIVE_MS = 30000;

export class Live {
  constructor({ onEvent, onPoll, onState }) {
    this.onEvent = onEvent;
    this.onPoll = onPoll;
    this.onState = onState;
    this.backoff = 1000;
    this.pollTimer = 0;
    this.retryTimer = 0;
    this.state = "";
    this.wasLive = false;
  }

  start() {
    this.connectSocket();
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }

  dispatch(raw) {
    // Like Mailpit, the server batches events that pile up within a few milliseconds into one websocket message,
    // one JSON object per line.
    for (const line of String(raw).split("\n")) {
      if (!line.trim()) continue;
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        continue;
      }
      if (event && typeof event.Type === "string") this.onEvent(event);
    }
  }

  connectSocket() {
    const url = new URL("api/events", document.baseURI); // under the webroot the page is served at
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let opened = false;
    let socket;
    try {
      socket = new WebSocket(url.href);
    } catch {
      this.connectStream();
      return;
    }
    socket.addEventListener("open", () => {
      opened = true;
      this.backoff = 1000;
      this.stopPolling();
      this.setState("live", "websocket");
      // Back after a break (a restart, or the server dropped this page as too slow): catch up on what was missed.
      if (this.wasLive) this.onPoll();
      this.wasLive = true;
    });
    socket.addEventListener("message", (e) => this.dispatch(e.data));
    socket.addEventListener("close", () => {
      if (!opened) {
        this.connectStream();
        return;
      }
      // The server went away (restart, sleep): catch up by polling while we knock again.
      this.startPolling();
      setTimeout(() => this.connectSocket(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 15000);
    });
  }

  connectStream() {
    if (typeof EventSource === "undefined") {
      this.startPolling();
      return;
    }
    let opened = false;
    const stream = new EventSource("api/v1/events");
    stream.addEventListener("open", () => {
      opened = true;
      this.stopPolling();
      this.setState("live", "server-sent events");
      if (this.wasLive) this.onPoll();
      this.wasLive = true;
    });
    stream.addEventListener("message", (e) => this.dispatch(e.data));
    for (const type of ["new", "update", "delete", "prune", "truncate", "stats"]) {
      stream.addEventListener(type, (e) => {
        let data = null;
        try {
          data = JSON.parse(e.data);
        } catch {
          /* keep null */
        }
        if (data && typeof data.Type === "string") this.onEvent(data);
        else this.onEvent({ Type: type, Data: data });
      });
    }
    stream.addEventListener("error", () => {
      if (opened && stream.readyState !== EventSource.CLOSED) {
        this.setState("polling", "reconnecting");
        this.startPolling();
        return; // EventSource reconnects by itself
      }
      stream.close();
      this.startPolling();
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connectSocket(), RETRY_LIVE_MS);
    });
  }

  startPolling() {
    if (this.state !== "polling") this.setState("polling", "no live connection; checking every few seconds");
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => this.onPoll(), POLL_MS);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = 0;
  }
}
