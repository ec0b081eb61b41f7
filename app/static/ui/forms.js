// Attaching an integration to forms: per form, whether it is attached, its event filter, whether it is
// enabled and notifies on failure, and simple conditions ("all" or "any" of field / operator / value rows).
// Conditions this editor cannot show as rows (nested groups, "not") are kept and edited as JSON.

import { userErrors } from "./graphql.js";
import { el, field, option, splitList, uid } from "./dom.js";

const Q_FORMS = `query($slug: String!) { workspace(slug: $slug) { forms(first: 100) { edges { node {
  id slug name integrations { id enabled events logic notifyOnFailure integration { id } } } } } } }`;
const ATTACHMENT = `formIntegration { id enabled events logic notifyOnFailure integration { id } } errors { field message code }`;
const M_ATTACH = `mutation($input: FormIntegrationAttachInput!) { formIntegrationAttach(input: $input) { ${ATTACHMENT} } }`;
const M_UPDATE = `mutation($input: FormIntegrationUpdateInput!) { formIntegrationUpdate(input: $input) { ${ATTACHMENT} } }`;
const M_DETACH = `mutation($id: ID!) { formIntegrationDetach(input: {id: $id}) { detachedId errors { field message code } } }`;

export const OPERATORS = [
  ["eq", "equals"], ["neq", "does not equal"], ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"],
  ["in", "is one of"], ["contains", "contains"], ["startsWith", "starts with"], ["exists", "exists"],
];

/** "9" -> 9, "true" -> true, "null" -> null, '"9"' -> "9", anything else stays text. */
export function parseValue(text) {
  const raw = String(text).trim();
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) return Number(raw);
  if (raw === "true" || raw === "false" || raw === "null" || /^["[{]/.test(raw)) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

export function formatValue(value) {
  if (typeof value === "string") return /^-?\d+(\.\d+)?$|^(true|false|null)$/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** Whether the editor can show `logic` as rows: null/{} or {all|any: [leaves]}. */
export function isSimpleLogic(logic) {
  if (!logic || (typeof logic === "object" && !Object.keys(logic).length)) return true;
  const keys = Object.keys(logic);
  if (keys.length !== 1 || !["all", "any"].includes(keys[0]) || !Array.isArray(logic[keys[0]])) return false;
  return logic[keys[0]].every((leaf) => leaf && typeof leaf === "object" && typeof leaf.field === "string"
    && typeof leaf.op === "string" && Object.keys(leaf).every((k) => ["field", "op", "value"].includes(k)));
}

/** The conditions editor; `value()` is the logic to send (null: none), or throws with a message. */
export function logicEditor(logic, { testid = "logic" } = {}) {
  if (!isSimpleLogic(logic)) {
    const area = el("textarea", { rows: "6", spellcheck: "false", class: "mono", "data-testid": `${testid}-json` });
    area.value = JSON.stringify(logic, null, 2);
    return {
      element: el("div", { class: "logic" }, field("Conditions (JSON)", area,
        { hint: "nested conditions are edited as JSON; {} removes them" })),
      value() {
        const text = area.value.trim();
        if (!text) return null;
        try {
          const parsed = JSON.parse(text);
          return parsed && Object.keys(parsed).length ? parsed : null;
        } catch {
          throw new Error("The conditions are not valid JSON.");
        }
      },
    };
  }
  const mode = logic && logic.any ? "any" : "all";
  const leaves = logic ? logic[mode] || [] : [];
  const match = el("select", { "data-testid": `${testid}-mode` }, option("all", "all of", mode === "all"),
    option("any", "any of", mode === "any"));
  const rows = el("div", { class: "rows", "data-testid": `${testid}-rows` });
  const empty = el("p", { class: "muted small", text: "No conditions: every matching event is sent." });
  const sync = () => {
    empty.hidden = rows.children.length > 0;
  };
  const add = (leaf = { field: "", op: "eq", value: "" }) => {
    const fieldInput = el("input", { type: "text", spellcheck: "false", placeholder: "answers.score", value: leaf.field,
      "data-testid": `${testid}-field` });
    const op = el("select", { "data-testid": `${testid}-op` },
      ...OPERATORS.map(([value, text]) => option(value, text, value === leaf.op)));
    const valueInput = el("input", { type: "text", spellcheck: "false", "data-testid": `${testid}-value`,
      value: leaf.value === undefined ? "" : leaf.op === "in" && Array.isArray(leaf.value)
        ? leaf.value.map(formatValue).join(", ") : formatValue(leaf.value) });
    const syncOp = () => {
      valueInput.placeholder = op.value === "in" ? "a, b, 3" : op.value === "exists" ? "true (or false)" : "value";
    };
    op.addEventListener("change", syncOp);
    syncOp();
    const row = el("div", { class: "row editor-row", "data-testid": `${testid}-row` },
      field("Field", fieldInput), field("Operator", op), field("Value", valueInput, { className: "field grow" }));
    row.append(el("button", { type: "button", class: "secondary", text: "Remove", "aria-label": "Remove condition",
      "data-testid": `${testid}-remove`, onclick: () => { row.remove(); sync(); } }));
    row.read = () => {
      const name = fieldInput.value.trim();
      if (!name) return null;
      const leafOut = { field: name, op: op.value };
      const text = valueInput.value.trim();
      if (op.value === "exists") {
        if (text) leafOut.value = parseValue(text);
      } else if (op.value === "in") {
        leafOut.value = text.startsWith("[") ? parseValue(text) : splitList(text).map(parseValue);
      } else {
        leafOut.value = parseValue(text);
      }
      return leafOut;
    };
    rows.append(row);
    sync();
    return row;
  };
  for (const leaf of leaves) add(leaf);
  sync();
  const matchId = uid("m");
  match.id = matchId;
  return {
    element: el("fieldset", { class: "logic", "data-testid": testid },
      el("legend", { text: "Conditions" }),
      el("div", { class: "row" }, el("label", { for: matchId, text: "Send when" }), match,
        el("span", { class: "muted", text: "of these match the event's payload:" })),
      rows, empty,
      el("button", { type: "button", class: "secondary", text: "Add condition", "data-testid": `${testid}-add`,
        onclick: () => add().querySelector("input").focus() })),
    value() {
      const list = [...rows.children].map((row) => row.read()).filter(Boolean);
      return list.length ? { [match.value]: list } : null;
    },
  };
}

export class FormsEditor {
  /**
   * @param {object} o
   * @param {import("./graphql.js").GraphQLClient} o.client
   * @param {string} o.workspace
   * @param {object} o.integration
   * @param {HTMLElement} o.root
   */
  constructor({ client, workspace, integration, root, announce = () => {}, onRender = () => {}, onChanged = () => {} }) {
    Object.assign(this, { client, workspace, integration, root, announce, onRender, onChanged });
  }

  async load() {
    this.root.replaceChildren(el("p", { class: "muted", text: "Loading forms…" }));
    let forms;
    try {
      forms = (await this.client.request(Q_FORMS, { slug: this.workspace })).workspace.forms.edges.map((e) => e.node);
    } catch (error) {
      this.root.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      this.onRender();
      return;
    }
    const intro = el("p", { class: "muted small", text: "Attached to a form, this integration receives only the events "
      + "of its attached forms that pass the attachment's filter and conditions." });
    this.root.replaceChildren(intro, ...(forms.length ? forms.map((f) => this.formBlock(f))
      : [el("p", { class: "muted", "data-testid": "forms-empty", text: "This workspace has no forms yet." })]));
    this.onRender();
  }

  formBlock(form) {
    const attachment = form.integrations.find((a) => a.integration.id === this.integration.id) || null;
    const block = el("fieldset", { class: "form-block", "data-testid": "form-attachment", "data-form": form.slug });
    const render = (current) => {
      const attached = el("input", { type: "checkbox", id: uid("att"), checked: Boolean(current),
        "data-testid": "form-attached" });
      const events = el("input", { type: "text", spellcheck: "false", value: current ? current.events.join(", ") : "*",
        "data-testid": "form-events" });
      const enabled = el("input", { type: "checkbox", id: uid("en"), checked: current ? current.enabled : true,
        "data-testid": "form-enabled" });
      const notify = el("input", { type: "checkbox", id: uid("nf"), checked: current ? current.notifyOnFailure : false,
        "data-testid": "form-notify" });
      const logic = logicEditor(current ? current.logic : null, { testid: "form-logic" });
      const message = el("p", { class: "muted", role: "status", "data-testid": "form-message" });
      const details = el("div", { class: "attachment", hidden: !current },
        field("Events from this form", events, { hint: "comma separated: names, * or prefixes like session.*" }),
        el("label", { for: enabled.id, class: "check" }, enabled, el("span", { text: "Enabled" })),
        el("label", { for: notify.id, class: "check" }, notify,
          el("span", { text: "Tell the workspace's other integrations when a delivery fails" })),
        logic.element);
      attached.addEventListener("change", () => { details.hidden = !attached.checked; this.onRender(); });
      const save = el("button", { type: "submit", text: "Save", "data-testid": "form-save" });
      const form_ = el("form", {}, el("label", { for: attached.id, class: "check strong" }, attached,
        el("span", { text: `Send events of “${form.name}” (${form.slug})` })), details,
      el("div", { class: "row" }, save, message));
      form_.addEventListener("submit", async (event) => {
        event.preventDefault();
        save.disabled = true;
        message.className = "muted";
        try {
          const next = await this.save(form, current, {
            attached: attached.checked, events: splitList(events.value), enabled: enabled.checked,
            notifyOnFailure: notify.checked, logic: attached.checked ? logic.value() : null,
          });
          render(next);
          const shown = block.querySelector('[data-testid="form-message"]');
          shown.textContent = next ? "Saved." : "Detached.";
          this.announce(`${form.name}: ${shown.textContent}`);
          this.onChanged();
        } catch (error) {
          message.className = "error";
          message.textContent = error.message;
          save.disabled = false;
        }
        this.onRender();
      });
      block.replaceChildren(el("legend", { text: form.name }), form_);
    };
    render(attachment);
    return block;
  }

  /** Attaches, updates or detaches; answers the attachment (null when detached) or throws with a message. */
  async save(form, current, { attached, events, enabled, notifyOnFailure, logic }) {
    if (!attached) {
      if (!current) return null;
      const payload = (await this.client.request(M_DETACH, { id: current.id })).formIntegrationDetach;
      if (payload.errors.length) throw new Error(userErrors(payload));
      return null;
    }
    if (!current) {
      const input = { workspace: this.workspace, formSlug: form.slug, integrationId: this.integration.id,
        events: events.length ? events : ["*"], enabled, notifyOnFailure, logic };
      const payload = (await this.client.request(M_ATTACH, { input })).formIntegrationAttach;
      if (payload.errors.length) throw new Error(userErrors(payload));
      return payload.formIntegration;
    }
    const input = { id: current.id, events: events.length ? events : ["*"], enabled, notifyOnFailure, logic: logic || {} };
    const payload = (await this.client.request(M_UPDATE, { input })).formIntegrationUpdate;
    if (payload.errors.length) throw new Error(userErrors(payload));
    return payload.formIntegration;
  }
}
