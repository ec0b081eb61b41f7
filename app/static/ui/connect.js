// Connecting integrations: one form per type, built from `integrationTypes` (its configFields), with the
// events to send. Webhook, Slack and Discord connect at once (a generated signing secret is shown once);
// HubSpot, Pipedrive and Google Sheets open the provider's consent page in a popup, which comes back to
// /static/oauth-done.html; that page tells this one (postMessage to the opener) and closes. Google Sheets
// connected without a spreadsheet is NEEDS_SETUP: a picker lists the account's spreadsheets (with a search
// box) and choosing one sets config.spreadsheet_id, which sends what was held meanwhile.

import { userErrors } from "./graphql.js";
import { INTEGRATION_FIELDS } from "./integrations.js";
import { eventPicker } from "./events.js";
import { debounce, el, field, secretReveal, setFieldError, timeAgo, uid } from "./dom.js";

export const Q_TYPES = `{ integrationTypes { type label authKind available unavailableReason
  configFields { name label kind required secret description } } }`;
const M_CONNECT = `mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { ${INTEGRATION_FIELDS} } secret errors { field message code } } }`;
const M_OAUTH_URL = `mutation($input: IntegrationOAuthConnectUrlInput!) { integrationOAuthConnectUrl(input: $input) {
  url errors { field message code } } }`;
const M_EVENTS = `mutation($id: ID!, $events: [String!]!) { integrationUpdate(input: {id: $id, events: $events}) {
  errors { field message code } } }`;

const Q_SETUP = `query($id: ID!) { integration(id: $id) { id name type status } }`;
const Q_SPREADSHEETS = `query($id: ID!, $search: String) { integrationSpreadsheets(id: $id, search: $search) {
  id name modifiedTime url } }`;
const M_SPREADSHEET = `mutation($id: ID!, $config: JSON!) { integrationUpdate(input: {id: $id, config: $config}) {
  integration { id status } errors { field message code } } }`;

export const OAUTH_MESSAGE = "hookyard:oauth";
const POPUP_FEATURES = "popup,width=640,height=760";

// Mapping fields whose value is a list of payload paths rather than {target: path}.
const LIST_MAPPINGS = new Set(["columns"]);
// Suggested first rows of a mapping, per type and field.
const MAPPING_HINTS = {
  HUBSPOT: { mapping: [["email", ""], ["firstname", ""]] },
  PIPEDRIVE: { mapping: [["name", ""], ["email", ""]] },
  GOOGLE_SHEETS: { columns: [["", "$timestamp"], ["", "$event"]] },
};

/** Rows of inputs (key → value, or value only), with add and remove buttons. */
function rowsEditor({ keyLabel, valueLabel, rows = [["", ""]], keyed = true, testid, valueType = "text" }) {
  const list = el("div", { class: "rows", "data-testid": testid });
  const add = (key = "", value = "") => {
    const k = keyed ? el("input", { type: "text", spellcheck: "false", value: key, "data-testid": `${testid}-key` }) : null;
    const v = el("input", { type: valueType, spellcheck: "false", value, autocomplete: "off", "data-testid": `${testid}-value` });
    const row = el("div", { class: "row editor-row" },
      k ? field(keyLabel, k) : null, field(valueLabel, v, { className: "field grow" }));
    row.append(el("button", { type: "button", class: "secondary", text: "Remove", "data-testid": `${testid}-remove`,
      "aria-label": `Remove ${keyed ? keyLabel.toLowerCase() : valueLabel.toLowerCase()} row`,
      onclick: () => { row.remove(); } }));
    list.append(row);
    return row;
  };
  for (const [key, value] of rows) add(key, value);
  const addButton = el("button", { type: "button", class: "secondary", text: `Add ${keyed ? keyLabel.toLowerCase() : "row"}`,
    "data-testid": `${testid}-add`, onclick: () => { const row = add(); row.querySelector("input").focus(); } });
  return {
    element: el("div", {}, list, addButton),
    entries() {
      return [...list.querySelectorAll(".editor-row")].map((row) => {
        const inputs = row.querySelectorAll("input");
        return keyed ? [inputs[0].value.trim(), inputs[1].value.trim()] : ["", inputs[0].value.trim()];
      }).filter(([k, v]) => (keyed ? k || v : v));
    },
    first: () => list.querySelector("input"),
  };
}

/** Opens `url` (or a blank window to navigate later) as the OAuth popup; null when the browser blocked it. */
function openPopup(url = "") {
  try {
    return window.open(url, "hookyard-oauth", POPUP_FEATURES);
  } catch {
    return null;
  }
}

/**
 * Waits for the popup's answer: its postMessage (same origin only, from that window), a BroadcastChannel
 * message where the opener link was cut (providers that set Cross-Origin-Opener-Policy), or the popup closing.
 * Resolves {status: "connected" | "error" | "closed", integrationId?, error?}.
 */
export function waitForOAuth(popup) {
  return new Promise((resolve) => {
    let channel = null;
    let timer = null;
    const finish = (result) => {
      window.removeEventListener("message", onMessage);
      if (channel) channel.close();
      clearInterval(timer);
      resolve(result);
    };
    const accept = (data) => data && typeof data === "object" && data.type === OAUTH_MESSAGE;
    const onMessage = (event) => {
      if (event.origin !== location.origin || (popup && event.source !== popup) || !accept(event.data)) return;
      finish({ status: event.data.status, integrationId: event.data.integrationId, error: event.data.error });
    };
    window.addEventListener("message", onMessage);
    try {
      channel = new BroadcastChannel(OAUTH_MESSAGE);
      channel.onmessage = (event) => {
        if (accept(event.data)) finish({ status: event.data.status, integrationId: event.data.integrationId, error: event.data.error });
      };
    } catch {
      channel = null;
    }
    if (popup) {
      timer = setInterval(() => {
        // Give a message posted just before closing a moment to arrive.
        if (popup.closed) setTimeout(() => finish({ status: "closed" }), 400);
      }, 500);
    }
  });
}

export class ConnectPanel {
  /**
   * @param {object} o
   * @param {import("./graphql.js").GraphQLClient} o.client
   * @param {string} o.workspace
   * @param {HTMLElement} o.root
   * @param {(integration: object|null) => void} [o.onConnected] a new (or reconnected) integration
   * @param {() => {name: string, system: boolean}[]} [o.eventTypes]
   * @param {string} [o.returnUrl] where OAuth providers send the popup back (/static/oauth-done.html)
   */
  constructor({ client, workspace, root, onConnected = () => {}, onError = () => {}, announce = () => {},
    onRender = () => {}, eventTypes = () => [], returnUrl = new URL("/static/oauth-done.html", location.href).href }) {
    Object.assign(this, { client, workspace, root, onConnected, onError, announce, onRender, eventTypes, returnUrl });
    this.types = [];
    this.chooser = el("div", { class: "type-chooser", role: "group", "aria-label": "Integration types",
      "data-testid": "connect-types" });
    this.formHolder = el("div", { "data-testid": "connect-form-holder" });
    this.status = el("p", { class: "muted", role: "status", "data-testid": "connect-status" });
    this.root.replaceChildren(this.chooser, this.status, this.formHolder);
  }

  async load() {
    try {
      this.types = (await this.client.request(Q_TYPES)).integrationTypes;
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED") this.onError(error.message);
      return;
    }
    this.chooser.replaceChildren(...this.types.map((t) => {
      const reasonId = uid("why");
      const button = el("button", { type: "button", class: "type", "data-testid": "connect-type", "data-type": t.type,
        disabled: !t.available, "aria-describedby": t.available ? null : reasonId,
        onclick: () => this.openForm(t) }, el("span", { text: t.label }));
      if (!t.available) button.append(el("small", { id: reasonId, text: t.unavailableReason || "unavailable" }));
      return button;
    }));
    this.onRender();
  }

  close() {
    const type = this.formHolder.dataset.type;
    for (const b of this.chooser.querySelectorAll("button")) b.setAttribute("aria-pressed", "false");
    this.formHolder.replaceChildren();
    delete this.formHolder.dataset.type;
    const button = type && this.chooser.querySelector(`[data-type="${CSS.escape(type)}"]`);
    if (button) button.focus();
    this.onRender();
  }

  openForm(info) {
    this.status.textContent = "";
    for (const b of this.chooser.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.type === info.type));
    this.formHolder.dataset.type = info.type;
    const oauth = info.authKind === "oauth2";
    const name = el("input", { type: "text", required: true, maxlength: "200", value: info.label, "data-testid": "connect-name" });
    const controls = {}; // config/secret path -> {read(), control}
    const parts = [field("Name", name, { hint: "how this integration is listed" })];
    const hints = MAPPING_HINTS[info.type] || {};

    for (const f of info.configFields) {
      const testid = `connect-config-${f.name}`;
      const label = f.required ? `${f.label} (required)` : f.label;
      if (f.kind === "url" || f.kind === "string") {
        const input = el("input", { type: f.kind === "url" ? "url" : "text", required: f.required, spellcheck: "false",
          placeholder: f.kind === "url" ? f.description : "", "data-testid": testid });
        parts.push(field(label, input, { hint: f.kind === "url" ? "" : f.description }));
        controls[f.name] = { control: () => input, secret: f.secret, read: () => input.value.trim() || undefined };
      } else if (f.kind === "boolean") {
        const input = el("input", { type: "checkbox", checked: /default true/i.test(f.description), "data-testid": testid });
        input.id = uid("f");
        parts.push(el("div", { class: "field check" }, el("label", { for: input.id, class: "check" }, input,
          el("span", { text: f.label })), f.description ? el("small", { class: "hint", text: f.description }) : null));
        controls[f.name] = { control: () => input, secret: f.secret, read: () => input.checked };
      } else if (f.kind === "headers") {
        const editor = rowsEditor({ keyLabel: "Header", valueLabel: "Value", rows: [], testid: "connect-header" });
        parts.push(el("fieldset", {}, el("legend", { text: f.label }),
          el("p", { class: "muted small", text: "Sent with every request. Values are write-only: nobody can read them back." }),
          editor.element));
        controls[f.name] = { control: editor.first, secret: f.secret,
          read: () => (editor.entries().length ? Object.fromEntries(editor.entries()) : undefined) };
      } else if (f.kind === "secret") {
        const group = `secret-${uid("g")}`;
        const generate = el("input", { type: "radio", name: group, value: "generate", checked: true, id: uid("r"),
          "data-testid": "connect-secret-generate" });
        const own = el("input", { type: "radio", name: group, value: "own", id: uid("r"), "data-testid": "connect-secret-own" });
        const input = el("input", { type: "password", autocomplete: "new-password", spellcheck: "false", minlength: "12",
          disabled: true, "data-testid": "connect-secret-input" });
        const sync = () => { input.disabled = !own.checked; if (own.checked) input.focus(); };
        generate.addEventListener("change", sync);
        own.addEventListener("change", sync);
        parts.push(el("fieldset", {}, el("legend", { text: f.label }),
          el("label", { for: generate.id, class: "check" }, generate, el("span", { text: "Generate one for me (shown once)" })),
          el("label", { for: own.id, class: "check" }, own, el("span", { text: "Use my own" })),
          field("Your secret", input, { hint: "at least 12 characters, e.g. whsec_…" })));
        controls[f.name] = { control: () => input, secret: true, read: () => (own.checked ? input.value : undefined) };
      } else if (f.kind === "mapping") {
        const list = LIST_MAPPINGS.has(f.name);
        const editor = rowsEditor({ keyLabel: "Field", valueLabel: "Payload path",
          rows: hints[f.name] || [["", ""]], keyed: !list, testid: `connect-mapping-${f.name}` });
        parts.push(el("fieldset", {}, el("legend", { text: label }),
          el("p", { class: "muted small", text: f.description }), editor.element));
        controls[f.name] = { control: editor.first, secret: f.secret, read: () => {
          const entries = editor.entries();
          if (!entries.length) return undefined;
          return list ? entries.map(([, v]) => v) : Object.fromEntries(entries);
        } };
      }
    }
    const events = eventPicker({ eventTypes: this.eventTypes(), testid: "connect-events" });
    parts.push(events.element);
    const errors = el("div", { class: "error", role: "alert", "data-testid": "connect-error", hidden: true });
    const submit = el("button", { type: "submit", "data-testid": "connect-submit",
      text: oauth ? `Continue to ${info.label}` : "Connect" });
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel", "data-testid": "connect-cancel",
      onclick: () => this.close() });
    const form = el("form", { class: "connect-form", "data-testid": "connect-form", "data-type": info.type,
      "aria-label": `Connect ${info.label}`, novalidate: true },
      el("h3", { text: `Connect ${info.label}`, tabindex: "-1" }),
      oauth ? el("p", { class: "muted", text: `A ${info.label} window opens to grant access; it closes by itself when done.` }) : null,
      ...parts, errors, el("div", { class: "row" }, submit, cancel));

    const showErrors = (list) => {
      for (const c of Object.values(controls)) if (c.control()) setFieldError(c.control(), "");
      setFieldError(name, "");
      const lines = [];
      for (const e of list) {
        const path = (e.field || "").replace(/^(config|secrets)\./, "");
        const key = path.split(".")[0];
        const control = e.field === "name" ? name : controls[key] ? controls[key].control() : null;
        if (control) setFieldError(control, e.message);
        lines.push(`${e.field ? e.field + ": " : ""}${e.message}`);
      }
      errors.replaceChildren(...lines.map((line) => el("div", { text: line })));
      errors.hidden = !lines.length;
      const firstInvalid = form.querySelector("[aria-invalid=true]");
      if (firstInvalid) firstInvalid.focus();
      this.onRender();
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!name.value.trim()) {
        showErrors([{ field: "name", message: "A name is required." }]);
        return;
      }
      const config = {};
      const secrets = {};
      for (const [key, c] of Object.entries(controls)) {
        const value = c.read();
        if (value === undefined) continue;
        (c.secret ? secrets : config)[key] = value;
      }
      submit.disabled = true;
      try {
        if (oauth) {
          await this.connectOAuth(info, { name: name.value.trim(), config, events: events.value() }, showErrors);
        } else {
          await this.connectDirect(info, { name: name.value.trim(), config, secrets, events: events.value() }, showErrors);
        }
      } finally {
        submit.disabled = false;
      }
    });
    this.formHolder.replaceChildren(form);
    form.querySelector("h3").focus();
    this.onRender();
  }

  async connectDirect(info, { name, config, secrets, events }, showErrors) {
    const input = { workspace: this.workspace, type: info.type, name, config, events };
    if (Object.keys(secrets).length) input.secrets = secrets;
    let payload;
    try {
      payload = (await this.client.request(M_CONNECT, { input })).integrationConnect;
    } catch (error) {
      showErrors([{ message: error.message }]);
      return;
    }
    if (payload.errors.length) {
      showErrors(payload.errors);
      return;
    }
    this.announce(`${name} connected.`);
    this.onConnected(payload.integration);
    if (payload.secret) {
      this.formHolder.replaceChildren(el("div", { class: "connected", "data-testid": "connect-done" },
        el("h3", { text: `${name} is connected`, tabindex: "-1" }),
        secretReveal(payload.secret, { title: "Signing secret",
          note: "Verify each request's webhook-signature with it. Copy it now: it will not be shown again.",
          onDismiss: () => this.close() })));
      this.formHolder.querySelector("h3").focus();
    } else {
      this.close();
      this.status.textContent = `${name} is connected.`;
    }
    this.onRender();
  }

  /** Starts the provider's consent in a popup; `integrationId` reconnects that integration instead. */
  async connectOAuth(info, { name, config = null, events = null, integrationId = null }, showErrors) {
    // Open the window now, while the click still counts as a user gesture; navigate it once the URL is known.
    const popup = openPopup("");
    const input = { workspace: this.workspace, type: info.type, redirectTo: this.returnUrl, name };
    if (config && Object.keys(config).length) input.config = config;
    if (integrationId) input.integrationId = integrationId;
    let payload;
    try {
      payload = (await this.client.request(M_OAUTH_URL, { input })).integrationOAuthConnectUrl;
    } catch (error) {
      if (popup) popup.close();
      showErrors([{ message: error.message }]);
      return;
    }
    if (payload.errors.length) {
      if (popup) popup.close();
      showErrors(payload.errors);
      return;
    }
    const win = popup;
    if (win) {
      win.location.href = payload.url;
    } else {
      // Blocked: let the person open it themselves (rel=opener keeps the way back to this page).
      this.status.replaceChildren(`The popup was blocked. `, el("a", { href: payload.url, target: "hookyard-oauth",
        rel: "opener", "data-testid": "connect-oauth-link", text: `Open ${info.label} to continue` }));
      this.onRender();
    }
    this.status.dataset.state = "waiting";
    if (win) this.status.textContent = `Waiting for ${info.label}…`;
    const result = await waitForOAuth(win);
    delete this.status.dataset.state;
    if (result.status === "connected") {
      if (events && !(events.length === 1 && events[0] === "*") && result.integrationId) {
        try {
          const answer = (await this.client.request(M_EVENTS, { id: result.integrationId, events })).integrationUpdate;
          if (answer.errors.length) this.onError(userErrors(answer));
        } catch (error) {
          this.onError(error.message);
        }
      }
      const setup = info.type === "GOOGLE_SHEETS" && result.integrationId ? await this.pendingSetup(result.integrationId) : null;
      this.status.textContent = setup ? `${name || info.label} is connected. Choose a spreadsheet to finish.`
        : `${name || info.label} is connected.`;
      this.announce(this.status.textContent);
      if (setup) {
        this.onConnected(null);
        this.chooseSpreadsheet(setup);
        return;
      }
      if (!integrationId) this.close();
    } else if (result.status === "error") {
      this.status.textContent = `${info.label} did not connect: ${result.error || "unknown error"}.`;
    } else {
      this.status.textContent = `The ${info.label} window was closed. If you finished there, the list below is up to date.`;
    }
    this.onConnected(null);
    this.onRender();
  }

  /** The integration when it still needs setup (NEEDS_SETUP), else null. */
  async pendingSetup(id) {
    try {
      const found = (await this.client.request(Q_SETUP, { id })).integration;
      return found && found.status === "NEEDS_SETUP" ? found : null;
    } catch (error) {
      this.onError(error.message);
      return null;
    }
  }

  /**
   * The spreadsheet picker of a Google Sheets integration that needs one: a search box and a list of the
   * account's spreadsheets (buttons; Tab or the arrow keys move between them). Choosing calls integrationUpdate.
   */
  chooseSpreadsheet(integration) {
    for (const b of this.chooser.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.type === integration.type));
    this.formHolder.dataset.type = integration.type;
    const headingId = uid("h");
    const search = el("input", { type: "search", spellcheck: "false", autocomplete: "off", maxlength: "200",
      "data-testid": "sheet-search" });
    const list = el("ul", { class: "sheet-list", "aria-labelledby": headingId, "data-testid": "sheet-list" });
    const note = el("p", { class: "muted", role: "status", "data-testid": "sheet-status" });
    const errors = el("div", { class: "error", role: "alert", "data-testid": "sheet-error", hidden: true });
    const later = el("button", { type: "button", class: "secondary", text: "Choose later", "data-testid": "sheet-later",
      onclick: () => this.close() });
    const picker = el("section", { class: "sheet-picker", "aria-labelledby": headingId, "data-testid": "sheet-picker",
      "data-id": integration.id },
      el("h3", { id: headingId, text: `Choose a spreadsheet for ${integration.name}`, tabindex: "-1" }),
      el("p", { class: "muted", text: "Each event adds a row to it. Events that arrive before you choose wait, and are sent then." }),
      field("Search spreadsheets", search, { hint: "part of the name; the most recently modified come first" }),
      note, list, errors, el("div", { class: "row" }, later));
    const showError = (message) => {
      errors.textContent = message;
      errors.hidden = !message;
      this.onRender();
    };
    const options = () => [...list.querySelectorAll("button")];
    const choose = async (sheet) => {
      for (const b of options()) b.disabled = true;
      showError("");
      note.textContent = `Saving “${sheet.name}”…`;
      try {
        const answer = (await this.client.request(M_SPREADSHEET, { id: integration.id,
          config: { spreadsheet_id: sheet.id } })).integrationUpdate;
        if (answer.errors.length) throw new Error(userErrors(answer));
      } catch (error) {
        for (const b of options()) b.disabled = false;
        note.textContent = "";
        showError(`Could not choose it: ${error.message}`);
        return;
      }
      this.close();
      this.status.textContent = `${integration.name} adds rows to “${sheet.name}”.`;
      this.announce(this.status.textContent);
      this.onConnected(null);
      this.onRender();
    };
    let asked = 0;
    const load = async () => {
      const mine = ++asked;
      note.textContent = "Loading spreadsheets…";
      let sheets;
      try {
        sheets = (await this.client.request(Q_SPREADSHEETS, { id: integration.id,
          search: search.value.trim() || null })).integrationSpreadsheets;
      } catch (error) {
        if (mine !== asked) return;
        note.textContent = "";
        list.replaceChildren();
        showError(`Could not list the spreadsheets: ${error.message}`);
        return;
      }
      if (mine !== asked) return; // a newer search answered first
      showError("");
      note.textContent = sheets.length ? `${sheets.length} spreadsheet${sheets.length === 1 ? "" : "s"}`
        : "No spreadsheet matches.";
      list.replaceChildren(...sheets.map((sheet) => el("li", {},
        el("button", { type: "button", class: "sheet-option", "data-testid": "sheet-option", "data-id": sheet.id,
          "aria-label": `${sheet.name}, modified ${timeAgo(sheet.modifiedTime)}`, onclick: () => choose(sheet) },
        el("span", { class: "sheet-name", text: sheet.name }),
        el("small", { class: "muted", text: `modified ${timeAgo(sheet.modifiedTime)}` })))));
      this.onRender();
    };
    search.addEventListener("input", debounce(load, 300));
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") load();
      if (event.key === "ArrowDown" && options()[0]) {
        event.preventDefault();
        options()[0].focus();
      }
    });
    list.addEventListener("keydown", (event) => {
      const all = options();
      const at = all.indexOf(document.activeElement);
      if (at < 0 || !["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) return;
      event.preventDefault();
      if (event.key === "ArrowUp" && at === 0) search.focus();
      else {
        const next = { ArrowDown: Math.min(at + 1, all.length - 1), ArrowUp: at - 1, Home: 0, End: all.length - 1 }[event.key];
        all[next].focus();
      }
    });
    this.formHolder.replaceChildren(picker);
    picker.querySelector("h3").focus();
    this.onRender();
    return load();
  }

  /** Reconnects an OAuth integration whose access expired (NEEDS_REAUTH). */
  async reconnect(integration) {
    const info = this.types.find((t) => t.type === integration.type) || { type: integration.type, label: integration.type };
    await this.connectOAuth(info, { name: integration.name, integrationId: integration.id },
      (errors) => this.onError(errors.map((e) => e.message).join("; ")));
  }
}

