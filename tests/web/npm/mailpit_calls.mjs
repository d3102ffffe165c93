// Calls every method of the npm package mailpit-api, unchanged, against a running mailnest, and prints one JSON
// object: {method-and-case: {ok: true, value} | {ok: false, error}}. tests/web/test_npm_clients.py checks it.
//
// usage: node mailpit_calls.mjs '{"base": "http://127.0.0.1:PORT", "releaseTo": "...", "refusedTo": "..."}'
import { MailpitClient } from "mailpit-api";

const args = JSON.parse(process.argv[2]);
const mailpit = new MailpitClient(args.base);
const results = {};

async function blob(b) {
  const bytes = Buffer.from(await b.arrayBuffer());
  return { type: b.type, size: bytes.length, base64: bytes.toString("base64").slice(0, 200000) };
}

async function step(name, fn) {
  try {
    const value = await fn();
    results[name] = { ok: true, value: value instanceof Blob ? await blob(value) : value };
    return value;
  } catch (error) {
    results[name] = { ok: false, error: String(error && error.message ? error.message : error) };
    return undefined;
  }
}

const png = args.pngBase64;

await step("getInfo", () => mailpit.getInfo());
await step("getConfiguration", () => mailpit.getConfiguration());
await step("listMessages", () => mailpit.listMessages());
await step("listMessages(1,2)", () => mailpit.listMessages(1, 2));

const sent = await step("sendMessage", () =>
  mailpit.sendMessage({
    From: { Email: "sender@example.test", Name: "Sender Name" },
    To: [{ Email: "rcpt@example.test", Name: "Recipient" }, { Email: "other+npm@example.test" }],
    Cc: [{ Email: "cc@example.test" }],
    Bcc: ["hidden@example.test"],
    ReplyTo: [{ Email: "reply@example.test" }],
    Subject: "Sent by mailpit-api ✓",
    Text: "Plain text body, visit https://example.invalid/welcome",
    HTML: '<p>HTML body <img src="cid:logo"></p>',
    Attachments: [
      { Content: png, Filename: "logo.png", ContentID: "logo" },
      { Content: Buffer.from("attached text\n").toString("base64"), Filename: "notes.txt", ContentType: "text/plain" },
    ],
    Tags: ["Npm", "Api"],
    Headers: { "X-Campaign": "spring" },
  }),
);
const id = sent && sent.ID;

await step("getMessageSummary(id)", () => mailpit.getMessageSummary(id));
await step("getMessageSummary()", () => mailpit.getMessageSummary());
await step("getMessageHeaders(id)", () => mailpit.getMessageHeaders(id));
await step("getMessageHeaders()", () => mailpit.getMessageHeaders());
const summary = results["getMessageSummary(id)"].value;
const attachment = summary && summary.Attachments && summary.Attachments[0];
const inline = summary && summary.Inline && summary.Inline[0];
await step("getMessageAttachment", () => mailpit.getMessageAttachment(id, attachment.PartID));
await step("getAttachmentThumbnail", () => mailpit.getAttachmentThumbnail(id, inline.PartID));
await step("getMessageSource(id)", () => mailpit.getMessageSource(id));
await step("getMessageSource()", () => mailpit.getMessageSource());
await step("releaseMessage(allowed)", () => mailpit.releaseMessage(id, { To: [args.releaseTo] }));
await step("releaseMessage(refused)", () => mailpit.releaseMessage(id, { To: [args.refusedTo] }));

await step("setReadStatus(ids)", () => mailpit.setReadStatus({ IDs: [id], Read: false }));
await step("after setReadStatus(ids)", () => mailpit.listMessages());
await step("setReadStatus(search)", () => mailpit.setReadStatus({ Search: "subject:seeded", Read: true }, { tz: "UTC" }));
await step("after setReadStatus(search)", () => mailpit.searchMessages({ query: "is:unread" }));
await step("setReadStatus()", () => mailpit.setReadStatus());
await step("after setReadStatus()", () => mailpit.listMessages());
await step("setReadStatus(all read)", () => mailpit.setReadStatus({ Read: true }));
await step("after setReadStatus(all read)", () => mailpit.listMessages());

await step("searchMessages", () => mailpit.searchMessages({ query: "from:sender@example.test", start: 0, limit: 5, tz: "UTC" }));
await step("searchMessages(bad)", () => mailpit.searchMessages({ query: 'subject:"unclosed' }));
await step("waitForMessage", () => mailpit.waitForMessage({ query: "subject:seeded" }, { timeout: 3000, interval: 100 }));
await step("waitForMessages(options)", () => mailpit.waitForMessages({ timeout: 3000, interval: 100 }));
await step("waitForMessages(request)", () =>
  mailpit.waitForMessages({ query: "subject:seeded", count: 2 }, { timeout: 3000, interval: 100 }),
);
await step("waitForMessages(timeout)", () =>
  mailpit.waitForMessages({ query: "subject:never-there" }, { timeout: 300, interval: 100 }),
);

await step("htmlCheck(id)", () => mailpit.htmlCheck(id));
await step("linkCheck(id)", () => mailpit.linkCheck(id));
await step("linkCheck(id, true)", () => mailpit.linkCheck(id, true));
await step("spamAssassinCheck(id)", () => mailpit.spamAssassinCheck(id));

await step("getTags", () => mailpit.getTags());
await step("setTags", () => mailpit.setTags({ IDs: [id], Tags: ["Tag One", "tag/two!"] }));
await step("after setTags", () => mailpit.getMessageSummary(id));
await step("renameTag", () => mailpit.renameTag("Tag One", "Renamed Tag"));
await step("after renameTag", () => mailpit.getTags());
await step("deleteTag", () => mailpit.deleteTag("Renamed Tag"));
await step("after deleteTag", () => mailpit.getTags());
await step("setTags(remove)", () => mailpit.setTags({ IDs: [id] }));
await step("after setTags(remove)", () => mailpit.getMessageSummary(id));

await step("getChaosTriggers", () => mailpit.getChaosTriggers());
await step("setChaosTriggers", () => mailpit.setChaosTriggers({ Sender: { ErrorCode: 451, Probability: 5 } }));
await step("setChaosTriggers()", () => mailpit.setChaosTriggers());

await step("renderMessageHTML(id)", () => mailpit.renderMessageHTML(id));
await step("renderMessageHTML(id, 1)", () => mailpit.renderMessageHTML(id, 1));
await step("renderMessageHTML()", () => mailpit.renderMessageHTML());
await step("renderMessageText(id)", () => mailpit.renderMessageText(id));
await step("renderMessageText()", () => mailpit.renderMessageText());

await step("deleteMessagesBySearch", () => mailpit.deleteMessagesBySearch({ query: "subject:doomed" }));
await step("after deleteMessagesBySearch", () => mailpit.searchMessages({ query: "subject:doomed" }));
await step("deleteMessages(ids)", () => mailpit.deleteMessages({ IDs: [id] }));
await step("getMessageSummary(deleted)", () => mailpit.getMessageSummary(id));
await step("deleteMessages()", () => mailpit.deleteMessages());
await step("after deleteMessages()", () => mailpit.listMessages());

process.stdout.write(JSON.stringify(results));
