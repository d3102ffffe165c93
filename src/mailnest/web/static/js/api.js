// The HTTP API (Mailpit v1 shapes). Every call goes through request(), which turns a non-2xx answer into an
// ApiError carrying the server's {"Error": ...} reason. Every URL is relative: the page is served at the webroot
// (`/` or, with --webroot, e.g. `/mail/`), so `api/v1/...` resolves under it.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, { json, signal, as = "json", keepalive = false } = {}) {
  const init = { method, signal, keepalive, headers: { Accept: "application/json" } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The server cannot be reached");
  }
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try {
      const text = await response.text();
      try {
        const body = JSON.parse(text);
        reason = body.Error || body.error || body.message || reason;
      } catch {
        if (text && text.length < 300) reason = text;
      }
    } catch {
      /* the status line is reason enough */
    }
    throw new ApiError(response.status, reason);
  }
  if (as === "json") {
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  if (as === "bytes") return response.arrayBuffer();
  return response.text();
}

const enc = encodeURIComponent;

function qs(params) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const partUrl = (id, partId, download = false) =>
  `api/v1/message/${enc(id)}/part/${enc(partId)}${download ? "?dl=1" : ""}`;
export const rawUrl = (id) => `api/v1/message/${enc(id)}/raw`;
// The sanitized preview, for the page's own iframe (/view/ID.html is the message's original HTML, for tests).
export const viewUrl = (id, remote = false) => `view/${enc(id)}.preview.html${remote ? "?remote=1" : ""}`;

export const api = {
  /** One page of the inbox or of a search. */
  list({ mailbox = "", query = "", start = 0, limit = 50, signal } = {}) {
    const path = query ? "api/v1/search" : "api/v1/messages";
    return request("GET", path + qs({ query, mailbox, start, limit }), { signal });
  },
  message: (id, signal) => request("GET", `api/v1/message/${enc(id)}`, { signal }),
  headers: (id, signal) => request("GET", `api/v1/message/${enc(id)}/headers`, { signal }),
  raw: (id, signal) => request("GET", rawUrl(id), { signal, as: "bytes" }),
  preview: (id, signal) => request("GET", `view/${enc(id)}.json`, { signal }),
  /** The server requests every http(s) link in the message: {Errors, Links: [{URL, StatusCode, Status}]}. */
  linkCheck: (id, signal) => request("GET", `api/v1/message/${enc(id)}/link-check`, { signal }),
  /** Mailpit's HTML compatibility check: {Platforms, Total, Warnings}. */
  htmlCheck: (id, signal) => request("GET", `api/v1/message/${enc(id)}/html-check`, { signal }),
  /** Mailpit's SpamAssassin check: {Error, IsSpam, Score, Rules: [{Name, Score, Description}]}. */
  spamCheck: (id, signal) => request("GET", `api/v1/message/${enc(id)}/sa-check`, { signal }),
  partText: (id, partId, signal) => request("GET", partUrl(id, partId), { signal, as: "text" }),
  /** Mailpit's PUT /api/v1/tags: the messages' tags become exactly `tags`. */
  setTags: (ids, tags) => request("PUT", "api/v1/tags", { json: { IDs: ids, Tags: tags }, as: "text" }),
  tags: () => request("GET", "api/v1/tags"),
  mailboxes: () => request("GET", "api/v1/mailboxes"),
  /** The IMAP folders mail was filed in: {Folders: [{Name, Owner, Total, Unread}]}. */
  folders: () => request("GET", "api/v1/folders"),
  webui: () => request("GET", "api/v1/webui"),
  setRead: (ids, read) => request("PUT", "api/v1/messages", { json: { IDs: ids, Read: read }, as: "text" }),
  setReadMatching: (read, { mailbox = "", query = "" }) =>
    request("PUT", "api/v1/messages" + qs({ mailbox }), { json: { IDs: [], Read: read, Search: query }, as: "text" }),
  /** `keepalive`: the request outlives the page (a delete still waiting for its undo when the tab closes). */
  remove: (ids, { keepalive = false } = {}) => request("DELETE", "api/v1/messages", { json: { IDs: ids }, as: "text", keepalive }),
  /** Everything in the view: all mail, one mailbox, or what a search matches. */
  removeMatching({ mailbox = "", query = "" }) {
    if (query) return request("DELETE", "api/v1/search" + qs({ query, mailbox }), { as: "text" });
    return request("DELETE", "api/v1/messages" + qs({ mailbox }), { json: { IDs: [] }, as: "text" });
  },
  release: (id, to) => request("POST", `api/v1/message/${enc(id)}/release`, { json: { To: to }, as: "text" }),
  send: (payload) => request("POST", "api/v1/send", { json: payload }),
};
