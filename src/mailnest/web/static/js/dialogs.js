// Dialogs: the delete-all confirmation, release to an address, compose and send.

import { api } from "./api.js";
import { $, toast } from "./dom.js";
import { parseAddresses } from "./format.js";

for (const button of document.querySelectorAll("dialog [data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}

/** Resolves true when the reader confirms. */
export function confirmDialog({ title, text, ok = "Delete" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-ok").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

export function setupRelease() {
  const dialog = $("#release-dialog");
  const form = $("#release-form");
  const error = $("#release-error");
  let message = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = parseAddresses($("#release-to").value).map((a) => a.Email);
    if (!to.length) {
      showError(error, "Enter at least one address.");
      return;
    }
    $("#release-submit").disabled = true;
    try {
      await api.release(message.ID, to);
      dialog.close();
      toast(`Released to ${to.join(", ")}`);
    } catch (err) {
      const reason = err.status === 400 || err.status === 403 ? `Release refused: ${err.message}`
        : err.status === 404 ? `Release is not available: ${err.message}` : `Release failed: ${err.message}`;
      showError(error, reason);
    } finally {
      $("#release-submit").disabled = false;
    }
  });
  return (msg) => {
    if (!msg) return;
    message = msg;
    showError(error, "");
    $("#release-to").value = "";
    dialog.showModal();
    $("#release-to").focus();
  };
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function setupCompose({ onSent }) {
  const dialog = $("#compose-dialog");
  const form = $("#compose-form");
  const error = $("#compose-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const get = (name) => String(data.get(name) || "").trim();
    const to = parseAddresses(get("to"));
    if (!to.length) {
      showError(error, "Add at least one recipient.");
      return;
    }
    const payload = {
      // The From field's placeholder shows this default: what the field says is what is sent.
      From: { Email: get("from") || form.elements.from.placeholder, Name: get("fromName") },
      To: to,
      Cc: parseAddresses(get("cc")),
      Bcc: parseAddresses(get("bcc")).map((a) => a.Email),
      Subject: get("subject"),
      Text: String(data.get("text") || ""),
      HTML: String(data.get("html") || ""),
      Tags: get("tags").split(",").map((t) => t.trim()).filter(Boolean),
      Attachments: [],
    };
    $("#compose-send").disabled = true;
    try {
      for (const file of form.elements.attachments.files) {
        payload.Attachments.push({ Filename: file.name, ContentType: file.type || "application/octet-stream", Content: await readBase64(file) });
      }
      const result = await api.send(payload);
      dialog.close();
      form.reset();
      toast("Message sent");
      onSent(result && result.ID);
    } catch (err) {
      showError(error, err.status === 404 ? "Sending is not available on this server (no /api/v1/send)." : `Send failed: ${err.message}`);
    } finally {
      $("#compose-send").disabled = false;
    }
  });
  return () => {
    showError(error, "");
    dialog.showModal();
    form.elements.to.focus();
  };
}
