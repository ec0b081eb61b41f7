// The integration list: health, send test, enable/disable, rename, events, forms, rotate secret (the new
// secret shown once), reconnect (OAuth), delete with confirmation. Rows are updated in place, so a panel
// that is open under a row (a secret being copied, a rename being typed) survives a refresh.

import { userErrors } from "./graphql.js";
import { DELIVERY_FIELDS } from "./deliveries.js";
import { eventPicker } from "./events.js";
import { badge, debounce, el, field, option, secretReveal, setFieldError, timeAgo } from "./dom.js";

export const INTEGRATION_FIELDS = `id name type status enabled events scope lastSuccessAt secretsSet config createdAt`;

const Q_INTEGRATIONS = `query($slug: String!) { workspace(slug: $slug) {
  integrations(first: 100) { edges { node { ${INTEGRATION_FIELDS} } } } } }`;
const M_TEST = `mutation($id: ID!) { integrationTest(input: {id: $id}) {
  result { success responseCode durationMs errorMessage } delivery { ${DELIVERY_FIELDS} }
  errors { field message code } } }`;
const M_UPDATE = `mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { ${INTEGRATION_FIELDS} } errors { field message code } } }`;
const M_DISCONNECT = `mutation($id: ID!) { integrationDisconnect(input: {id: $id}) {
  deletedId errors { field message code } } }`;
const M_ROTATE = `mutation($id: ID!, $grace: Int!) { integrationRotateSecret(input: {id: $id, gracePeriodSeconds: $grace}) {
  secret errors { field message code } } }`;

export const GRACE_PERIODS = [
  [0, "Now: the old secret stops working at once"],
  [3600, "In 1 hour: both secrets sign meanwhile"],
  [86400, "In 24 hours: both secrets sign meanwhile"],
  [604800, "In 7 days: both secrets sign meanwhile"],
];

function health(integration) {
  if (!integration.enabled) return "Switched off: receives nothing";
  switch (integration.status) {
    case "DISABLED":
      return "Disabled after failing too long; enable it to send the held deliveries";
    case "NEEDS_REAUTH":
      return "Access expired: reconnect it; deliveries are held meanwhile";
    case "NEEDS_SETUP":
      return "Needs a spreadsheet: choose one; deliveries are held meanwhile";
    case "FAILING":
      return `Failing; last success ${timeAgo(integration.lastSuccessAt)}`;
    default:
      return integration.lastSuccessAt ? `Last success ${timeAgo(integration.lastSuccessAt)}` : "No delivery yet";
  }
}

export class IntegrationList {
  /**
   * @param {object} o
   * @param {import("./graphql.js").GraphQLClient} o.client
   * @param {string} o.workspace
   * @param {HTMLElement} o.root
   * @param {(message: string) => void} [o.onError]
   * @param {(message: string) => void} [o.announce]
   * @param {() => void} [o.onRender]
   * @param {(integrations: object[]) => void} [o.onChanged] after every load
   * @param {(delivery: object) => void} [o.onDelivery] the delivery a test made
   * @param {(integration: object, container: HTMLElement) => void} [o.formsPanel] fills the "Forms" panel
   * @param {(integration: object) => void} [o.onReconnect] OAuth reconnect
   * @param {(integration: object) => void} [o.onSetup] choose what a NEEDS_SETUP integration lacks (a spreadsheet)
   * @param {() => {name: string, system: boolean}[]} [o.eventTypes]
   */
  constructor({ client, workspace, root, onError = () => {}, announce = () => {}, onRender = () => {},
    onChanged = () => {}, onDelivery = () => {}, formsPanel = null, onReconnect = null, onSetup = null,
    eventTypes = () => [] }) {
    Object.assign(this, { client, workspace, root, onError, announce, onRender, onChanged, onDelivery, formsPanel,
      onReconnect, onSetup, eventTypes });
    this.entries = new Map(); // id -> {integration, row, panelRow, panel, panelKind, cells}
    this.testResults = new Map(); // id -> {text, success}
    this.integrations = [];
    this.refreshSoon = debounce(() => this.load(), 500);
    this.build();
  }

  build() {
    this.body = el("tbody", { id: "integrations-body", "data-testid": "integrations-body" });
    this.empty = el("p", { id: "integrations-empty", class: "muted", "data-testid": "integrations-empty", hidden: true,
      text: "No integrations yet." });
    const table = el("table", { class: "responsive", "data-testid": "integrations" },
      el("caption", { class: "sr-only", text: "Integrations" }),
      el("thead", {}, el("tr", {}, ...["Name", "Type", "Status", "Health", "Last test", "Actions"]
        .map((h) => el("th", { scope: "col", text: h })))),
      this.body);
    this.root.replaceChildren(el("div", { class: "table-wrap" }, table), this.empty);
  }

  async load() {
    try {
      const data = await this.client.request(Q_INTEGRATIONS, { slug: this.workspace });
      this.render(data.workspace.integrations.edges.map((e) => e.node));
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED") this.onError(error.message);
    }
    return this.integrations;
  }

  render(integrations) {
    this.integrations = integrations;
    const seen = new Set();
    let position = 0;
    for (const integration of integrations) {
      seen.add(integration.id);
      let entry = this.entries.get(integration.id);
      if (!entry) {
        entry = this.create(integration);
        this.entries.set(integration.id, entry);
      }
      entry.integration = integration;
      this.fill(entry);
      // Move rows only when out of place: moving a node that holds the focus would drop it.
      if (this.body.children[position] !== entry.row) this.body.insertBefore(entry.row, this.body.children[position] || null);
      if (this.body.children[position + 1] !== entry.panelRow) {
        this.body.insertBefore(entry.panelRow, this.body.children[position + 1] || null);
      }
      position += 2;
    }
    for (const [id, entry] of this.entries) {
      if (seen.has(id)) continue;
      entry.row.remove();
      entry.panelRow.remove();
      this.entries.delete(id);
    }
    this.empty.hidden = integrations.length > 0;
    this.onChanged(integrations);
    this.onRender();
  }

  create(integration) {
    const cells = {
      name: el("td", { "data-label": "Name", "data-testid": "integration-name" }),
      type: el("td", { "data-label": "Type", "data-testid": "integration-type" }),
      status: el("td", { "data-label": "Status" }),
      health: el("td", { "data-label": "Health", class: "muted", "data-testid": "integration-health" }),
      result: el("td", { "data-label": "Last test", "data-testid": "integration-test-result", class: "muted",
        role: "status" }),
      actions: el("td", { "data-label": "Actions", class: "actions" }),
    };
    const row = el("tr", { "data-testid": "integration-row", "data-id": integration.id }, ...Object.values(cells));
    const panel = el("td", { colspan: "6" });
    const panelRow = el("tr", { class: "panel-row", "data-testid": "integration-panel", "data-for": integration.id,
      hidden: true }, panel);
    const entry = { integration, row, panelRow, panel, panelKind: null, cells, buttons: {} };
    this.buildActions(entry);
    return entry;
  }

  fill(entry) {
    const i = entry.integration;
    const { cells } = entry;
    cells.name.textContent = i.name;
    cells.type.textContent = i.type;
    cells.status.replaceChildren(badge(i.enabled ? i.status : "OFF", "integration-status"));
    cells.health.textContent = health(i);
    entry.row.dataset.status = i.enabled ? i.status : "OFF";
    const shown = this.testResults.get(i.id);
    if (shown) {
      cells.result.textContent = shown.text;
      if (shown.success !== undefined) cells.result.dataset.success = String(shown.success);
      else delete cells.result.dataset.success;
    }
    const b = entry.buttons;
    b.toggle.textContent = i.enabled && i.status !== "DISABLED" ? "Disable" : "Enable";
    b.toggle.setAttribute("aria-label", `${b.toggle.textContent} ${i.name}`);
    for (const [key, button] of Object.entries(b)) {
      const label = button.dataset.label;
      if (label) button.setAttribute("aria-label", `${label} ${i.name}`);
      if (key === "rotate") button.hidden = !(i.type === "WEBHOOK" || (i.secretsSet || []).includes("signing_secret"));
      if (key === "reconnect") button.hidden = !(this.onReconnect && i.status === "NEEDS_REAUTH");
      if (key === "setup") button.hidden = !(this.onSetup && i.status === "NEEDS_SETUP" && i.type === "GOOGLE_SHEETS");
    }
  }

  buildActions(entry) {
    const make = (key, text, testid, onclick, className = "secondary") => {
      const button = el("button", { type: "button", class: className, text, "data-testid": testid,
        dataset: { label: text } });
      button.addEventListener("click", onclick);
      entry.buttons[key] = button;
      return button;
    };
    entry.cells.actions.append(
      make("test", "Send test", "integration-test", () => this.sendTest(entry), ""),
      make("toggle", "Disable", "integration-toggle", () => this.toggle(entry)),
      make("rename", "Rename", "integration-rename", () => this.openPanel(entry, "rename")),
      make("events", "Events", "integration-events", () => this.openPanel(entry, "events")),
      this.formsPanel ? make("forms", "Forms", "integration-forms", () => this.openPanel(entry, "forms")) : null,
      make("rotate", "Rotate secret", "integration-rotate", () => this.openPanel(entry, "rotate")),
      make("reconnect", "Reconnect", "integration-reconnect", () => this.onReconnect(entry.integration)),
      make("setup", "Choose spreadsheet", "integration-setup", () => this.onSetup(entry.integration), ""),
      make("delete", "Delete", "integration-delete", () => this.openPanel(entry, "delete"), "danger"),
    );
    delete entry.buttons.toggle.dataset.label; // its label changes with the state
  }

  // ----------------------------------------------------------------------------------------- actions

  remember(entry, text, success) {
    this.testResults.set(entry.integration.id, { text, success });
    const cell = entry.cells.result;
    cell.textContent = text;
    if (success !== undefined) cell.dataset.success = String(success);
    else delete cell.dataset.success;
    this.onRender();
  }

  async sendTest(entry) {
    const button = entry.buttons.test;
    button.disabled = true;
    this.remember(entry, "sending…");
    try {
      const payload = (await this.client.request(M_TEST, { id: entry.integration.id })).integrationTest;
      if (payload.errors.length) {
        this.remember(entry, userErrors(payload));
      } else {
        const r = payload.result;
        this.remember(entry, r.success
          ? `OK ${r.responseCode ?? ""} in ${r.durationMs ?? "?"} ms`
          : `Failed: ${r.errorMessage || r.responseCode || "unknown error"}`, r.success);
        if (payload.delivery) this.onDelivery(payload.delivery);
        this.refreshSoon();
      }
    } catch (error) {
      this.remember(entry, error.message);
    } finally {
      button.disabled = false;
    }
  }

  async update(entry, input) {
    const payload = (await this.client.request(M_UPDATE, { input: { id: entry.integration.id, ...input } }))
      .integrationUpdate;
    if (payload.errors.length) return payload;
    if (payload.integration) {
      this.render(this.integrations.map((i) => (i.id === payload.integration.id ? payload.integration : i)));
    }
    return payload;
  }

  async toggle(entry) {
    const button = entry.buttons.toggle;
    const i = entry.integration;
    const enable = !(i.enabled && i.status !== "DISABLED");
    button.disabled = true;
    try {
      const payload = await this.update(entry, { enabled: enable });
      if (payload.errors.length) this.onError(userErrors(payload));
      else this.announce(`${i.name} ${enable ? "enabled" : "disabled"}.`);
    } catch (error) {
      this.onError(error.message);
    } finally {
      button.disabled = false;
    }
  }

  closePanel(entry, { focus = true } = {}) {
    const kind = entry.panelKind;
    entry.panelKind = null;
    delete entry.panelRow.dataset.kind;
    entry.panel.replaceChildren();
    entry.panelRow.hidden = true;
    if (focus && kind && entry.buttons[kind]) entry.buttons[kind].focus();
    this.onRender();
  }

  openPanel(entry, kind) {
    if (entry.panelKind === kind) {
      this.closePanel(entry);
      return;
    }
    entry.panelKind = kind;
    entry.panelRow.hidden = false;
    entry.panelRow.dataset.kind = kind;
    const i = entry.integration;
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel", "data-testid": `integration-${kind}-cancel`,
      onclick: () => this.closePanel(entry) });
    let content;
    if (kind === "rename") content = this.renamePanel(entry, cancel);
    else if (kind === "events") content = this.eventsPanel(entry, cancel);
    else if (kind === "rotate") content = this.rotatePanel(entry, cancel);
    else if (kind === "delete") content = this.deletePanel(entry, cancel);
    else if (kind === "forms") {
      const editor = el("div", {});
      content = el("div", { class: "forms-panel" }, editor, el("div", { class: "row" },
        el("button", { type: "button", class: "secondary", text: "Close", "data-testid": "integration-forms-close",
          onclick: () => this.closePanel(entry) })));
      this.formsPanel(i, editor);
    }
    entry.panel.replaceChildren(el("div", { class: "panel-body", role: "group",
      "aria-label": `${entry.buttons[kind].dataset.label || kind}: ${i.name}` }, content));
    // Never the destructive button: Enter on an autofocused "Delete" would be too easy.
    const first = kind === "delete" ? cancel
      : entry.panel.querySelector("input:not([type=hidden]), select, textarea, button");
    if (first) first.focus();
    this.onRender();
  }

  renamePanel(entry, cancel) {
    const input = el("input", { type: "text", required: true, maxlength: "200", value: entry.integration.name,
      "data-testid": "integration-rename-input" });
    const form = el("form", { class: "row" }, field("New name", input, { className: "field grow" }),
      el("button", { type: "submit", text: "Save", "data-testid": "integration-rename-save" }), cancel);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) {
        setFieldError(input, "A name is required.");
        return;
      }
      try {
        const payload = await this.update(entry, { name });
        if (payload.errors.length) setFieldError(input, userErrors(payload));
        else {
          this.announce(`Renamed to ${name}.`);
          this.closePanel(entry);
        }
      } catch (error) {
        setFieldError(input, error.message);
      }
    });
    return form;
  }

  eventsPanel(entry, cancel) {
    const picker = eventPicker({ eventTypes: this.eventTypes(), selected: entry.integration.events,
      testid: "integration-events-picker" });
    const message = el("p", { class: "error", role: "alert", hidden: true });
    const scope = entry.integration.scope === "FORMS"
      ? el("p", { class: "muted small", text: "This integration is attached to forms: it hears only their events, "
        + "through each attachment's own filter as well as this one." }) : null;
    const form = el("form", {}, picker.element, scope, message,
      el("div", { class: "row" }, el("button", { type: "submit", text: "Save events", "data-testid": "integration-events-save" }),
        cancel));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const payload = await this.update(entry, { events: picker.value() });
        if (payload.errors.length) {
          message.textContent = userErrors(payload);
          message.hidden = false;
        } else {
          this.announce("Events saved.");
          this.closePanel(entry);
        }
      } catch (error) {
        message.textContent = error.message;
        message.hidden = false;
      }
    });
    return form;
  }

  rotatePanel(entry, cancel) {
    const grace = el("select", { "data-testid": "integration-rotate-grace" },
      ...GRACE_PERIODS.map(([seconds, text], n) => option(String(seconds), text, n === 2)));
    const confirm = el("button", { type: "submit", text: "Rotate", "data-testid": "integration-rotate-confirm" });
    const message = el("p", { class: "error", role: "alert", hidden: true });
    const holder = el("div", {});
    const form = el("form", {},
      el("p", { text: "A new signing secret replaces the current one. Update your receiver with it; during the grace "
        + "period every request carries both signatures." }),
      el("div", { class: "row" }, field("Old secret stops", grace), confirm, cancel), message, holder);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        const data = await this.client.request(M_ROTATE, { id: entry.integration.id, grace: Number(grace.value) });
        const payload = data.integrationRotateSecret;
        if (payload.errors.length) {
          message.textContent = userErrors(payload);
          message.hidden = false;
          confirm.disabled = false;
          return;
        }
        form.querySelector(".row").remove();
        holder.replaceChildren(secretReveal(payload.secret, {
          title: "New signing secret", onDismiss: () => this.closePanel(entry),
        }));
        this.announce("Secret rotated. Copy the new secret now.");
        this.onRender();
      } catch (error) {
        message.textContent = error.message;
        message.hidden = false;
        confirm.disabled = false;
      }
    });
    return form;
  }

  deletePanel(entry, cancel) {
    const i = entry.integration;
    const confirm = el("button", { type: "button", class: "danger", text: `Delete ${i.name}`,
      "data-testid": "integration-delete-confirm" });
    const message = el("p", { class: "error", role: "alert", hidden: true });
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        const payload = (await this.client.request(M_DISCONNECT, { id: i.id })).integrationDisconnect;
        if (payload.errors.length) {
          message.textContent = userErrors(payload);
          message.hidden = false;
          confirm.disabled = false;
          return;
        }
        this.announce(`${i.name} deleted.`);
        this.testResults.delete(i.id);
        this.render(this.integrations.filter((x) => x.id !== i.id));
      } catch (error) {
        message.textContent = error.message;
        message.hidden = false;
        confirm.disabled = false;
      }
    });
    return el("div", { role: "alertdialog", "aria-label": `Delete ${i.name}?` },
      el("p", { text: `Delete “${i.name}”? It stops receiving events at once, and this cannot be undone.` }),
      el("div", { class: "row" }, confirm, cancel), message);
  }
}
