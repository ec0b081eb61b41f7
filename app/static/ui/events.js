// Picking event filters: the workspace's event catalog (registered types with their descriptions, types seen
// in its events, Hookyard's own) as checkboxes, "all events", and free patterns (exact names, "*", prefix
// wildcards like "session.*"). Deprecated types are marked and listed after the others.

import { el, field, splitList, uid } from "./dom.js";

export const Q_EVENT_TYPES = `query($slug: String!) { eventTypes(workspace: $slug) {
  name system lastSeenAt registered description deprecated deprecationReason } }`;

const rank = (t) => (t.system ? 2 : t.deprecated ? 1 : 0);

/** Loads the event types of a workspace (deprecated, then system ones last); [] when they cannot be read. */
export async function loadEventTypes(client, workspace) {
  try {
    const data = await client.request(Q_EVENT_TYPES, { slug: workspace });
    return [...data.eventTypes].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  } catch {
    return [];
  }
}

/**
 * A fieldset to choose event filters. `value()` returns the list to send (["*"] for all events).
 * @param {{eventTypes: {name: string, system: boolean, description?: string|null, deprecated?: boolean,
 *   deprecationReason?: string|null}[], selected?: string[], testid?: string, legend?: string}} o
 */
export function eventPicker({ eventTypes = [], selected = ["*"], testid = "events", legend = "Events" } = {}) {
  const chosen = new Set(selected);
  const all = el("input", { type: "checkbox", id: uid("ev"), checked: chosen.has("*"), "data-testid": `${testid}-all` });
  const boxes = eventTypes.map((t) => el("input", { type: "checkbox", id: uid("ev"), value: t.name,
    checked: chosen.has(t.name), "data-testid": `${testid}-type` }));
  const known = new Set(eventTypes.map((t) => t.name));
  const custom = el("input", { type: "text", spellcheck: "false", placeholder: "session.*, order.paid",
    value: selected.filter((s) => s !== "*" && !known.has(s)).join(", "), "data-testid": `${testid}-custom` });
  const list = el("div", { class: "checks" }, ...boxes.map((box, i) => typeLabel(box, eventTypes[i])));
  const sync = () => {
    for (const box of boxes) box.disabled = all.checked;
    custom.disabled = all.checked;
  };
  all.addEventListener("change", sync);
  sync();
  const fieldset = el("fieldset", { class: "events", "data-testid": testid },
    el("legend", { text: legend }),
    el("label", { for: all.id, class: "check" }, all, el("span", { text: "All events" })),
    boxes.length ? list : el("p", { class: "muted small", text: "No event types are registered or published in this "
      + "workspace yet." }),
    field("Other events or patterns", custom, { hint: "comma separated; a trailing * matches a prefix" }));
  return {
    element: fieldset,
    value() {
      if (all.checked) return ["*"];
      return [...new Set([...boxes.filter((b) => b.checked).map((b) => b.value), ...splitList(custom.value)])];
    },
    /** Where the server's `events.N` errors point. */
    focusTarget: custom,
  };
}

/** A checkbox's label: the name, its marks, and what the catalog says it means (in full as a tooltip). */
function typeLabel(box, t) {
  const deprecated = t.deprecated ? `deprecated${t.deprecationReason ? `: ${t.deprecationReason}` : ""}` : "";
  const short = t.description && t.description.length > 80 ? `${t.description.slice(0, 79)}…` : t.description;
  return el("label", { for: box.id, class: t.deprecated ? "check deprecated" : "check",
    title: [t.description, deprecated].filter(Boolean).join(" — ") || null,
    "data-deprecated": t.deprecated ? "true" : null },
  box, el("span", { text: t.name }),
  t.system ? el("small", { class: "muted", text: " system" }) : null,
  t.deprecated ? el("small", { class: "muted", text: " deprecated" }) : null,
  short ? el("small", { class: "muted", text: ` — ${short}` }) : null);
}
