// Building DOM from message data. Text goes in through text nodes only: no innerHTML anywhere in the UI
// (the page's CSP enforces Trusted Types, so an innerHTML with a string would throw).

/**
 * h("a", {class: "x", href: url}, "text", childNode) -> element.
 * Attribute values are set with setAttribute (never parsed as markup); children are nodes or text.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An href we are willing to put on a link the reader may click: http(s) and mailto, nothing else. */
export function safeHref(value) {
  try {
    const url = new URL(value, location.href);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * A short notice at the bottom of the page; errors stay a little longer. With `action` ({label, run}) it
 * carries a button (Undo) and stays `ms` milliseconds. Returns a handle whose dismiss() removes it at once.
 */
export function toast(text, { error = false, action = null, ms = error ? 7000 : 3000 } = {}) {
  const box = $("#toasts");
  // The same error again (a poll failing every few seconds while the server is away) keeps the one on screen.
  const same = !action && [...box.children].find((t) => !t.classList.contains("with-action") && t.textContent === text);
  if (same) {
    clearTimeout(Number(same.dataset.timer));
    same.dataset.timer = String(setTimeout(() => same.remove(), ms));
    return { element: same, dismiss: () => same.remove() };
  }
  const item = h("div", { class: error ? "toast error" : "toast" }, h("span", {}, text));
  const dismiss = () => {
    clearTimeout(timer);
    item.remove();
  };
  if (action) {
    item.classList.add("with-action");
    item.append(h("button", { type: "button", class: "toast-action", onclick: () => {
      dismiss();
      action.run();
    } }, action.label));
  }
  box.append(item);
  const timer = setTimeout(() => item.remove(), ms);
  item.dataset.timer = String(timer);
  return { element: item, dismiss };
}
