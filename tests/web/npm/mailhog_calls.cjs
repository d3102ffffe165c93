// Calls every method of the npm package mailhog, unchanged, against a running mailnest, and prints one JSON object
// {case: {ok, value | error}}. Message items are reduced to what the package derives from them (its getters).
//
// usage: node mailhog_calls.cjs '{"host": "127.0.0.1", "port": PORT, "releaseTo": "...", "refusedTo": "..."}'
"use strict";
const mailhog = require("mailhog");

const args = JSON.parse(process.argv[2]);
const api = mailhog({ host: args.host, port: args.port });
const results = {};

function item(mail) {
  if (!mail) return mail;
  return {
    ID: mail.ID,
    text: mail.text,
    html: mail.html,
    subject: mail.subject,
    from: mail.from,
    to: mail.to,
    cc: mail.cc,
    bcc: mail.bcc,
    replyTo: mail.replyTo,
    date: mail.date ? mail.date.toISOString() : mail.date,
    deliveryDate: mail.deliveryDate ? mail.deliveryDate.toISOString() : mail.deliveryDate,
    attachments: mail.attachments.map((a) => ({
      name: a.name,
      type: a.type,
      encoding: a.encoding,
      decoded: api.decode(a.Body, a.encoding).slice(0, 200),
    })),
    rawFrom: mail.Raw && mail.Raw.From,
    rawTo: mail.Raw && mail.Raw.To,
    created: mail.Created,
  };
}

function page(result) {
  if (!result || !Array.isArray(result.items)) return result;
  return { total: result.total, count: result.count, start: result.start, items: result.items.map(item) };
}

function response(res) {
  // request() resolves with the http.IncomingMessage when the body is empty, else with the parsed JSON.
  return res && typeof res.statusCode === "number" ? { statusCode: res.statusCode } : { json: res };
}

async function step(name, fn, shape) {
  try {
    results[name] = { ok: true, value: shape(await fn()) };
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
  }
}

(async () => {
  await step("messages()", () => api.messages(), page);
  await step("messages(1, 2)", () => api.messages(1, 2), page);
  await step("search(containing)", () => api.search("quoted-printable"), page);
  await step("search(from)", () => api.search("alice@example.com", "from"), page);
  await step("search(to, 0, 1)", () => api.search("bob@example.com", "to", 0, 1), page);
  await step("latestFrom", () => api.latestFrom("alice@example.com"), item);
  await step("latestTo", () => api.latestTo("carol@example.com"), item);
  await step("latestContaining", () => api.latestContaining("Grüße"), item);
  await step("latestContaining(none)", () => api.latestContaining("nothing-matches-this"), (v) => v);
  const first = results["messages()"].value.items[0].ID;
  await step("releaseMessage(allowed)", () => api.releaseMessage(first, { host: "mx.example.invalid", port: "25",
    email: args.releaseTo }), response);
  await step("releaseMessage(refused)", () => api.releaseMessage(first, { host: "mx.example.invalid", port: "25",
    email: args.refusedTo }), response);
  await step("deleteMessage", () => api.deleteMessage(first), response);
  await step("after deleteMessage", () => api.messages(), page);
  await step("encode/decode", async () => {
    const qp = api.encode("Grüße, ümlaut", "quoted-printable");
    const b64 = api.encode("Grüße", "base64");
    return { qp, b64, back: api.decode(qp, "quoted-printable"), back64: api.decode(b64, "base64") };
  }, (v) => v);
  await step("deleteAll", () => api.deleteAll(), response);
  await step("after deleteAll", () => api.messages(), page);
  process.stdout.write(JSON.stringify(results));
})();
