// The second baseline of benchmarks/smtp_ingest.py: Node's smtp-server (the server half of Nodemailer), which
// drains each message and answers 250, storing nothing. `node sink.js PORTFILE` binds 127.0.0.1:0 and writes the port.
"use strict";
const fs = require("node:fs");
const { SMTPServer } = require("smtp-server");

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS", "AUTH"],
  size: 100 * 1024 * 1024,
  logger: false,
  onData(stream, session, callback) {
    stream.on("data", () => {});
    stream.on("end", () => callback(null, "OK"));
  },
});
server.on("error", (error) => console.error(error));
server.listen(0, "127.0.0.1", () => fs.writeFileSync(process.argv[2], String(server.server.address().port)));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
