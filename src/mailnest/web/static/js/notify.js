// Browser notifications for new mail (the Notification API), opt-in with a button: shown only while the page is in
// the background (the list shows new mail to a reader looking at it); a burst becomes one notification; clicking
// one brings the page forward on that message. The choice is kept in this browser.

import { toast } from "./dom.js";
import { shortAddress } from "./format.js";

const KEY = "mailnest.notify";
const BURST_MS = 400; // mail arriving this close together is announced once
const ICON = "static/icons/mailnest.svg";

function stored() {
  try {
    return localStorage.getItem(KEY) === "on";
  } catch {
    return false;
  }
}

function store(on) {
  try {
    localStorage.setItem(KEY, on ? "on" : "off");
  } catch {
    /* kept for this page only */
  }
}

/** Wire the opt-in button; returns {announce(summary)} for each new message (a no-op until opted in). */
export function setupNotifications({ button, onOpen }) {
  if (typeof Notification === "undefined") {
    button.hidden = true; // this browser (or an insecure origin) has no notifications
    return { announce() {} };
  }
  let on = stored() && Notification.permission === "granted";
  let waiting = [];
  let timer = 0;

  const render = () => {
    button.hidden = false;
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Notifications on" : "Notify me";
    button.title = on ? "New mail shows a browser notification while this page is in the background; click to stop"
      : "Show a browser notification when new mail arrives while this page is in the background";
  };

  button.addEventListener("click", async () => {
    if (on) {
      on = false;
      store(false);
      render();
      return;
    }
    if (!window.isSecureContext) {
      toast("Browsers show notifications only for pages on https or localhost: open mailnest at such an address", { error: true });
      return;
    }
    let permission = Notification.permission;
    if (permission === "default") {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = "denied";
      }
    }
    if (permission !== "granted") {
      toast("Notifications are blocked for this page: allow them in the browser's site settings, then try again", { error: true });
      return;
    }
    on = true;
    store(true);
    render();
    toast("You will be notified of new mail while this page is in the background");
  });

  const show = () => {
    timer = 0;
    const batch = waiting;
    waiting = [];
    if (!on || Notification.permission !== "granted" || !batch.length) return;
    const [first] = batch;
    const one = batch.length === 1;
    const title = one ? first.Subject || "(no subject)" : `${batch.length} new messages`;
    const body = one ? `From ${shortAddress(first.From) || "(no sender)"}`
      : batch.slice(0, 3).map((m) => m.Subject || "(no subject)").join("\n") + (batch.length > 3 ? "\n…" : "");
    let note;
    try {
      note = new Notification(title, { body, tag: one ? `mailnest-${first.ID}` : "mailnest-burst", icon: ICON });
    } catch {
      return; // a browser that only notifies from a service worker
    }
    note.onclick = () => {
      window.focus();
      const newest = batch[batch.length - 1].ID;
      if (newest) onOpen(newest);
      note.close?.();
    };
  };

  render();
  return {
    announce(summary) {
      if (!on || !summary) return;
      if (document.visibilityState === "visible" && document.hasFocus()) return;
      waiting.push(summary);
      if (!timer) timer = setTimeout(show, BURST_MS);
    },
  };
}
