// Small DOM helpers shared by the dashboard and the portal. No inline styles anywhere (the portal's
// Content-Security-Policy forbids them): look is in CSS, state in classes and data attributes.

const BOOLEAN_ATTRS = new Set(["checked", "disabled", "hidden", "required", "selected", "readonly", "multiple", "open"]);

/** el("button", {type: "button", text: "Go", onclick: fn, "data-testid": "go"}, ...children) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (BOOLEAN_ATTRS.has(key)) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child);
  }
}

export const byId = (id) => document.getElementById(id);

let counter = 0;
/** A fresh element id, to tie a <label for> to its control. */
export function uid(prefix = "hy") {
  counter += 1;
  return `${prefix}-${counter}`;
}

export function badge(status, testid) {
  return el("span", { class: `badge ${status}`, "data-testid": testid, text: status });
}

/** A label and its control (given an id when it has none), with an optional hint tied by aria-describedby. */
export function field(labelText, control, { hint = "", testid = null, className = "field" } = {}) {
  if (!control.id) control.id = uid("f");
  const parts = [el("label", { for: control.id, text: labelText }), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(el("small", { id: hintId, class: "hint", text: hint }));
  }
  const errorId = `${control.id}-error`;
  parts.push(el("small", { id: errorId, class: "field-error", role: "status", hidden: true }));
  return el("div", { class: className, "data-testid": testid }, ...parts);
}

/** Shows (or clears, with "") a validation message under a control made by field(). */
export function setFieldError(control, message) {
  const box = document.getElementById(`${control.id}-error`);
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
  const described = (control.getAttribute("aria-describedby") || "").split(" ").filter((v) => v && v !== box.id);
  if (message) described.push(box.id);
  if (described.length) control.setAttribute("aria-describedby", described.join(" "));
  else control.removeAttribute("aria-describedby");
}

export function option(value, text, selected = false) {
  return el("option", { value, text, selected });
}

export function formatDateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

export function timeAgo(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (Number.isNaN(seconds)) return String(iso);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 36) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** The value of <input type="datetime-local"> (local time) as an ISO instant, or null when empty. */
export function localInputToIso(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** An ISO instant as a value for <input type="datetime-local">. */
export function isoToLocalInput(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function prettyJson(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

/** Copies text; falls back to selecting it in `fallbackInput` and execCommand where the Clipboard API is
 * unavailable (an iframe without allow="clipboard-write", plain http). */
export async function copyText(text, fallbackInput = null) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through
  }
  if (fallbackInput) {
    fallbackInput.focus();
    fallbackInput.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
  return false;
}

/** A secret shown once: read-only field, copy button, and a note that it will not be shown again. */
export function secretReveal(secret, { title = "New signing secret", note = "Copy it now: it will not be shown again.",
  onDismiss = null, testid = "secret-reveal" } = {}) {
  const input = el("input", { type: "text", readonly: true, value: secret, class: "mono", spellcheck: "false",
    "data-testid": "secret-value", autocomplete: "off" });
  const status = el("span", { class: "muted", role: "status", "data-testid": "secret-copy-status" });
  const copy = el("button", { type: "button", class: "secondary", text: "Copy", "data-testid": "secret-copy",
    "aria-label": `Copy ${title.toLowerCase()}` });
  copy.addEventListener("click", async () => {
    const ok = await copyText(secret, input);
    status.textContent = ok ? "Copied." : "Select the text and copy it.";
  });
  const box = el("div", { class: "secret-reveal", role: "group", "aria-label": title, "data-testid": testid },
    el("strong", { text: title }),
    el("div", { class: "row" }, field("Secret", input, { className: "field grow" }), copy, status),
    el("p", { class: "muted", text: note }));
  if (onDismiss) {
    box.append(el("button", { type: "button", text: "I have stored it", "data-testid": "secret-dismiss",
      onclick: () => { box.remove(); onDismiss(); } }));
  }
  return box;
}

/** A polite live region for short announcements ("Saved", "3 deliveries queued"). */
export function announcer(root = document.body) {
  const region = el("div", { class: "sr-only", "aria-live": "polite", "data-testid": "announcer" });
  root.append(region);
  return (message) => {
    region.textContent = "";
    setTimeout(() => { region.textContent = message; }, 30);
  };
}

/** Calls fn at most once per `ms`, the last call winning. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Comma or newline separated list, trimmed, empties dropped. */
export function splitList(text) {
  return String(text || "").split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}
