// Live updates: the websocket /api/events (Mailpit's), else the SSE stream /api/v1/events, else polling.
// Every event arrives as {Type, Data}; the page decides what to re-read.

const POLL_MS = 3000;
// A websocket that worked on this page and then dropped (a server restart, a laptop waking up) is knocked on
// again quickly and then every RECONNECT_MAX_MS, so the page is live within a couple of seconds of the server
// being back. Only where the websocket never opened (a proxy that refuses it) do we fall back to the event
// stream, and then try the websocket again now and then.
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 2000;
const RETRY_LIVE_MS = 30000;

export class Live {
  constructor({ onEvent, onPoll, onState }) {
    this.onEvent = onEvent;
    this.onPoll = onPoll;
    this.onState = onState;
    this.backoff = RECONNECT_FIRST_MS;
    this.pollTimer = 0;
    this.retryTimer = 0;
    this.state = "";
    this.wasLive = false;
    this.socketWorked = false; // a websocket opened on this page once: a later failure means "server away"
  }

  start() {
    this.connectSocket();
    // Back from sleep or a lost network: knock at once rather than at the next retry.
    const now = () => {
      if (this.state !== "live" && this.socketWorked && document.visibilityState === "visible") this.connectSocket();
    };
    addEventListener("online", now);
    document.addEventListener("visibilitychange", now);
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
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return; // one attempt (or connection) at a time
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
    this.socket = socket;
    socket.addEventListener("open", () => {
      opened = true;
      this.socketWorked = true;
      this.backoff = RECONNECT_FIRST_MS;
      this.stopPolling();
      this.setState("live", "websocket");
      // Back after a break (a restart, or the server dropped this page as too slow): catch up on what was missed.
      if (this.wasLive) this.onPoll();
      this.wasLive = true;
    });
    socket.addEventListener("message", (e) => this.dispatch(e.data));
    socket.addEventListener("close", () => {
      if (this.socket === socket) this.socket = null;
      if (!opened && !this.socketWorked) {
        this.connectStream();
        return;
      }
      // The server went away (restart, sleep) or is not back yet: catch up by polling while we knock again.
      this.startPolling();
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connectSocket(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
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
