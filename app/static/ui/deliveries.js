// The delivery log: filters (status, event, form, integration, date range), cursor paging, live rows,
// a detail view (event, request, response, attempts), retry, and recovering failed deliveries since a date.

import { ApiError, userErrors } from "./graphql.js";
import {
  badge, el, field, formatDateTime, formatTime, isoToLocalInput, localInputToIso, option, prettyJson, setFieldError,
} from "./dom.js";

export const DELIVERY_FIELDS = `
  id status eventType attemptCount responseCode createdAt updatedAt errorMessage isTest nextAttemptAt blockedBy
  integration { id name } form { slug }`;

/** Why a PENDING delivery has not gone yet: behind an earlier one of its ordered lane, or queued for later
 * (an integration's rate or concurrency limit); "" otherwise. */
export function waitingNote(delivery) {
  if (delivery.status !== "PENDING" && delivery.status !== "RETRYING") return "";
  if (delivery.blockedBy) return `waiting for ${delivery.blockedBy}`;
  if (delivery.status === "PENDING" && delivery.nextAttemptAt && Date.parse(delivery.nextAttemptAt) > Date.now() + 500) {
    return `queued until ${formatTime(delivery.nextAttemptAt)}`;
  }
  return "";
}

export const STATUSES = ["PENDING", "SENDING", "SUCCEEDED", "RETRYING", "FAILED", "HELD"];

const Q_DELIVERIES = `query($slug: String!, $filter: DeliveryFilterInput, $first: Int, $after: String) {
  workspace(slug: $slug) { deliveries(filter: $filter, first: $first, after: $after) {
    totalCount totalCountCapped pageInfo { endCursor hasNextPage } edges { cursor node { ${DELIVERY_FIELDS} } } } } }`;
const Q_DETAIL = `query($id: ID!) { delivery(id: $id) { ${DELIVERY_FIELDS}
  nextAttemptAt deliveredAt durationMs request response
  event { id type payload createdAt idempotencyKey }
  form { slug name }
  attempts { id number trigger requestUrl responseCode responseHeaders responseBody durationMs errorMessage createdAt } } }`;
const M_RETRY = `mutation($id: ID!) { deliveryRetry(input: {id: $id}) {
  queued delivery { ${DELIVERY_FIELDS} } errors { field message code } } }`;
const M_RECOVER = `mutation($input: DeliveriesRecoverInput!) { deliveriesRecover(input: $input) {
  queued errors { field message code } } }`;

const IN_FLIGHT = new Set(["PENDING", "SENDING"]);
const BATCH = 20; // aliases per catch-up query, under the server's alias limit

function stamp(delivery) {
  const t = Date.parse(delivery.updatedAt);
  return Number.isNaN(t) ? 0 : t;
}

/** The same rule as the server: exact event name, or a prefix when it ends with "*". */
export function eventMatches(filter, eventType) {
  if (!filter) return true;
  if (filter.endsWith("*")) return eventType.startsWith(filter.slice(0, -1));
  return filter === eventType;
}

export function matchesFilter(filter, delivery) {
  if (filter.status && filter.status.length && !filter.status.includes(delivery.status)) return false;
  if (filter.integrationId && (!delivery.integration || delivery.integration.id !== filter.integrationId)) return false;
  if (filter.formSlug && (!delivery.form || delivery.form.slug !== filter.formSlug)) return false;
  if (filter.event && !eventMatches(filter.event, delivery.eventType)) return false;
  const created = Date.parse(delivery.createdAt);
  if (filter.from && created < Date.parse(filter.from)) return false;
  if (filter.to && created > Date.parse(filter.to)) return false;
  return true;
}

export class DeliveryLog {
  /**
   * @param {object} o
   * @param {import("./graphql.js").GraphQLClient} o.client
   * @param {string} o.workspace
   * @param {HTMLElement} o.root where the log is built
   * @param {(message: string) => void} [o.onError]
   * @param {(message: string) => void} [o.announce] polite status messages
   * @param {() => void} [o.onRender] after the DOM changed (the portal reports its height)
   * @param {{filters?: boolean, recover?: boolean, detail?: boolean}} [o.features]
   */
  constructor({ client, workspace, root, onError = () => {}, announce = () => {}, onRender = () => {},
    features = {}, pageSize = 50, maxRows = 500 }) {
    Object.assign(this, { client, workspace, root, onError, announce, onRender, pageSize, maxRows });
    this.features = { filters: true, recover: true, detail: true, ...features };
    this.rows = new Map(); // id -> delivery as last rendered
    this.filter = {};
    this.endCursor = null;
    this.hasMore = false;
    this.generation = 0;
    this.detailId = null;
    this.detailTimer = null;
    this.integrations = [];
    this.forms = [];
    this.build();
  }

  // -------------------------------------------------------------------------------------------- DOM

  build() {
    this.body = el("tbody", { id: "deliveries-body", "data-testid": "deliveries-body" });
    this.empty = el("p", { id: "deliveries-empty", class: "muted", "data-testid": "deliveries-empty", hidden: true,
      text: "No deliveries yet." });
    this.more = el("button", { type: "button", class: "secondary", "data-testid": "deliveries-more", hidden: true,
      text: "Load more", onclick: () => this.loadMore() });
    this.count = el("p", { class: "muted small", "data-testid": "deliveries-count", role: "status" });
    this.detail = el("section", { class: "detail", "data-testid": "delivery-detail", hidden: true,
      "aria-label": "Delivery details" });
    const table = el("table", { class: "responsive", "data-testid": "deliveries" },
      el("caption", { class: "sr-only", text: "Deliveries, newest first" }),
      el("thead", {}, el("tr", {}, ...["Status", "Event", "Integration", "Response", "Attempts", "Created", "Actions"]
        .map((h) => el("th", { scope: "col", text: h })))),
      this.body);
    this.root.replaceChildren(
      this.features.filters ? this.buildFilters() : null,
      this.features.recover ? this.buildRecover() : null,
      this.detail,
      el("div", { class: "table-wrap" }, table),
      this.empty,
      el("div", { class: "row" }, this.more, this.count),
    );
  }

  buildFilters() {
    this.fStatus = el("select", { "data-testid": "delivery-filter-status" }, option("", "Any status"),
      ...STATUSES.map((s) => option(s, s)));
    this.fEventList = el("datalist", { id: `${this.root.id || "log"}-events` });
    this.fEvent = el("input", { type: "text", placeholder: "e.g. session.*", spellcheck: "false",
      list: this.fEventList.id, "data-testid": "delivery-filter-event" });
    this.fForm = el("select", { "data-testid": "delivery-filter-form" }, option("", "Any form"));
    this.fIntegration = el("select", { "data-testid": "delivery-filter-integration" }, option("", "Any integration"));
    this.fFrom = el("input", { type: "datetime-local", "data-testid": "delivery-filter-from" });
    this.fTo = el("input", { type: "datetime-local", "data-testid": "delivery-filter-to" });
    const form = el("form", { class: "filters", "aria-label": "Filter deliveries", "data-testid": "delivery-filters" },
      field("Status", this.fStatus), field("Event", this.fEvent, { hint: "exact name, or a prefix ending in *" }),
      this.fEventList, field("Form", this.fForm), field("Integration", this.fIntegration),
      field("From", this.fFrom), field("To", this.fTo),
      el("div", { class: "actions" },
        el("button", { type: "submit", "data-testid": "delivery-filter-apply", text: "Filter" }),
        el("button", { type: "reset", class: "secondary", "data-testid": "delivery-filter-reset", text: "Reset" })));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyFilters(this.readFilters());
    });
    form.addEventListener("reset", () => setTimeout(() => this.applyFilters({}), 0));
    return form;
  }

  readFilters() {
    const filter = {};
    if (this.fStatus.value) filter.status = [this.fStatus.value];
    if (this.fEvent.value.trim()) filter.event = this.fEvent.value.trim();
    if (this.fForm.value) filter.formSlug = this.fForm.value;
    if (this.fIntegration.value) filter.integrationId = this.fIntegration.value;
    const from = localInputToIso(this.fFrom.value);
    const to = localInputToIso(this.fTo.value);
    if (from) filter.from = from;
    if (to) filter.to = to;
    return filter;
  }

  buildRecover() {
    this.rIntegration = el("select", { required: true, "data-testid": "recover-integration" });
    this.rSince = el("input", { type: "datetime-local", required: true, "data-testid": "recover-since",
      value: isoToLocalInput(new Date(Date.now() - 24 * 3600 * 1000).toISOString()) });
    this.rUntil = el("input", { type: "datetime-local", "data-testid": "recover-until" });
    this.rResult = el("p", { class: "muted", role: "status", "data-testid": "recover-result" });
    const submit = el("button", { type: "submit", "data-testid": "recover-submit", text: "Queue again" });
    const form = el("form", { class: "filters" },
      field("Integration", this.rIntegration), field("Failed since", this.rSince),
      field("Until", this.rUntil, { hint: "empty: now" }), el("div", { class: "actions" }, submit));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const since = localInputToIso(this.rSince.value);
      setFieldError(this.rSince, since ? "" : "Pick a date and time.");
      if (!since || !this.rIntegration.value) return;
      submit.disabled = true;
      this.rResult.textContent = "Queueing…";
      try {
        const input = { integrationId: this.rIntegration.value, since, until: localInputToIso(this.rUntil.value) };
        const payload = (await this.client.request(M_RECOVER, { input })).deliveriesRecover;
        if (payload.errors.length) {
          this.rResult.textContent = userErrors(payload);
        } else {
          const n = payload.queued;
          this.rResult.textContent = n === 1 ? "1 failed delivery queued again." : `${n} failed deliveries queued again.`;
          this.announce(this.rResult.textContent);
        }
      } catch (error) {
        this.rResult.textContent = error.message;
      } finally {
        submit.disabled = false;
        this.onRender();
      }
    });
    return el("details", { class: "recover", "data-testid": "delivery-recover" },
      el("summary", { text: "Recover failed deliveries" }),
      el("p", { class: "muted", text: "Queue again every delivery of one integration that failed in a time window." }),
      form, this.rResult);
  }

  /** The integrations to offer in the filter and recover lists. */
  setIntegrations(integrations) {
    this.integrations = integrations;
    const fill = (select, first) => {
      if (!select) return;
      const keep = select.value;
      select.replaceChildren(...(first ? [option("", first)] : []),
        ...integrations.map((i) => option(i.id, `${i.name} (${i.type})`)));
      if ([...select.options].some((o) => o.value === keep)) select.value = keep;
    };
    fill(this.fIntegration, "Any integration");
    fill(this.rIntegration, null);
  }

  setForms(forms) {
    this.forms = forms;
    if (!this.fForm) return;
    const keep = this.fForm.value;
    this.fForm.replaceChildren(option("", "Any form"), ...forms.map((f) => option(f.slug, f.name || f.slug)));
    if ([...this.fForm.options].some((o) => o.value === keep)) this.fForm.value = keep;
  }

  setEventTypes(names) {
    if (this.fEventList) this.fEventList.replaceChildren(...names.map((n) => el("option", { value: n })));
  }

  // ------------------------------------------------------------------------------------------- data

  filterInput() {
    const f = this.filter;
    const input = {};
    for (const key of ["status", "event", "formSlug", "integrationId", "from", "to"]) if (f[key]) input[key] = f[key];
    return Object.keys(input).length ? input : null;
  }

  /** Starts over with a new filter. */
  async applyFilters(filter) {
    this.filter = filter || {};
    this.rows.clear();
    this.body.replaceChildren();
    this.endCursor = null;
    this.hasMore = false;
    await this.load({ reset: true });
  }

  /** Reads the first page again and merges it in (after a reconnect, or on demand). */
  async refresh() {
    await this.load({ reset: false });
    await this.refreshStale();
  }

  async load({ reset }) {
    const generation = reset ? ++this.generation : this.generation;
    try {
      const data = await this.client.request(Q_DELIVERIES, {
        slug: this.workspace, filter: this.filterInput(), first: this.pageSize, after: null,
      });
      if (generation !== this.generation) return; // the filter changed meanwhile
      const page = data.workspace.deliveries;
      if (reset || this.endCursor === null) {
        this.endCursor = page.pageInfo.endCursor;
        this.hasMore = page.pageInfo.hasNextPage;
      }
      for (const edge of page.edges) this.upsert(edge.node, { fromList: true });
      this.total = page.totalCount;
      this.totalCapped = page.totalCountCapped;  // counted up to a cap: "1000+"
      this.renderFooter();
    } catch (error) {
      if (!(error instanceof ApiError) || error.code !== "UNAUTHENTICATED") this.onError(error.message);
    }
  }

  async loadMore() {
    if (!this.hasMore) return;
    const generation = this.generation;
    this.more.disabled = true;
    try {
      const data = await this.client.request(Q_DELIVERIES, {
        slug: this.workspace, filter: this.filterInput(), first: this.pageSize, after: this.endCursor,
      });
      if (generation !== this.generation) return;
      const page = data.workspace.deliveries;
      this.endCursor = page.pageInfo.endCursor || this.endCursor;
      this.hasMore = page.pageInfo.hasNextPage;
      for (const edge of page.edges) this.upsert(edge.node, { fromList: true });
      this.total = page.totalCount;
      this.totalCapped = page.totalCountCapped;
      this.renderFooter();
    } catch (error) {
      this.onError(error.message);
    } finally {
      this.more.disabled = false;
    }
  }

  /** Rows still shown as in flight that the first page did not cover: read them again by id. */
  async refreshStale() {
    const stale = [...this.rows.values()].filter((d) => IN_FLIGHT.has(d.status) || d.status === "RETRYING");
    for (let i = 0; i < stale.length; i += BATCH) {
      const chunk = stale.slice(i, i + BATCH);
      const query = `query(${chunk.map((_, n) => `$i${n}: ID!`).join(", ")}) { ${chunk
        .map((_, n) => `d${n}: delivery(id: $i${n}) { ${DELIVERY_FIELDS} }`).join(" ")} }`;
      const variables = Object.fromEntries(chunk.map((d, n) => [`i${n}`, d.id]));
      try {
        const data = await this.client.request(query, variables);
        for (const d of Object.values(data)) if (d) this.upsert(d, { fromList: true });
      } catch {
        return;
      }
    }
  }

  renderFooter() {
    this.empty.hidden = this.body.children.length > 0;
    this.more.hidden = !this.hasMore;
    this.count.textContent = typeof this.total === "number"
      ? `${this.rows.size} of ${this.total}${this.totalCapped ? "+" : ""} shown` : "";
    this.onRender();
  }

  // -------------------------------------------------------------------------------------------- rows

  /** A live update (always wins: they arrive in order) or a list/mutation result (only when newer). */
  upsert(delivery, { fromList = false } = {}) {
    const known = this.rows.get(delivery.id);
    if (known && fromList && stamp(delivery) < stamp(known)) return;
    if (!known && !fromList && !matchesFilter(this.filter, delivery)) return;
    if (!known && !fromList && this.hasMore && this.body.lastElementChild
        && delivery.id < this.body.lastElementChild.dataset.id) {
      return; // older than everything shown while more pages remain: "Load more" brings it in order
    }
    const merged = known ? { ...known, ...delivery } : delivery;
    this.rows.set(delivery.id, merged);
    const row = this.row(merged);
    const existing = this.body.querySelector(`tr[data-id="${CSS.escape(delivery.id)}"]`);
    if (existing) {
      existing.replaceWith(row);
    } else {
      // Newest first: ids are time-sortable.
      const after = [...this.body.children].find((tr) => tr.dataset.id < delivery.id);
      this.body.insertBefore(row, after || null);
      if (this.total !== undefined && !fromList && !this.totalCapped) this.total += 1;
      while (this.body.children.length > this.maxRows) {
        const last = this.body.lastElementChild;
        this.rows.delete(last.dataset.id);
        last.remove();
        this.hasMore = true;
      }
    }
    if (!fromList) row.classList.add("flash");
    if (this.detailId === delivery.id && !fromList) this.reloadDetailSoon();
    this.renderFooter();
  }

  row(delivery) {
    const cells = [
      el("td", { "data-label": "Status" }, badge(delivery.status, "delivery-status"),
        ...(waitingNote(delivery) ? [" ", el("span", { class: "muted", "data-testid": "delivery-waiting",
          text: waitingNote(delivery) })] : [])),
      el("td", { "data-label": "Event", "data-testid": "delivery-event",
        text: delivery.eventType + (delivery.isTest ? " (test)" : "") }),
      el("td", { "data-label": "Integration", "data-testid": "delivery-integration",
        text: delivery.integration ? delivery.integration.name : "" }),
      el("td", { "data-label": "Response", "data-testid": "delivery-response-code",
        text: delivery.responseCode ?? "—", title: delivery.errorMessage || "" }),
      el("td", { "data-label": "Attempts", "data-testid": "delivery-attempts", text: String(delivery.attemptCount) }),
      el("td", { "data-label": "Created", class: "muted", text: formatTime(delivery.createdAt),
        title: formatDateTime(delivery.createdAt) }),
    ];
    const actions = el("td", { "data-label": "Actions", "data-testid": "delivery-actions", class: "actions" });
    if (delivery.status === "FAILED") {
      const retry = el("button", { type: "button", "data-testid": "delivery-retry", text: "Retry",
        "aria-label": `Retry ${delivery.eventType} to ${delivery.integration ? delivery.integration.name : "integration"}` });
      retry.addEventListener("click", () => this.retry(delivery.id, retry));
      actions.append(retry);
    }
    if (this.features.detail) {
      actions.append(el("button", { type: "button", class: "secondary", "data-testid": "delivery-open", text: "Details",
        "aria-label": `Details of ${delivery.eventType} delivery ${delivery.id}`,
        onclick: () => this.openDetail(delivery.id) }));
    }
    cells.push(actions);
    return el("tr", { "data-testid": "delivery-row", "data-id": delivery.id, "data-status": delivery.status }, ...cells);
  }

  async retry(id, button) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Queued…";
    try {
      const payload = (await this.client.request(M_RETRY, { id })).deliveryRetry;
      if (payload.errors.length) {
        this.onError(userErrors(payload));
        button.disabled = false;
        button.textContent = label;
        return;
      }
      if (payload.delivery) this.upsert(payload.delivery, { fromList: true });
      this.announce("Delivery queued again.");
    } catch (error) {
      this.onError(error.message);
      button.disabled = false;
      button.textContent = label;
    }
  }

  // ------------------------------------------------------------------------------------------ detail

  async openDetail(id) {
    this.detailId = id;
    this.detail.hidden = false;
    this.detail.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    this.onRender();
    await this.loadDetail({ focus: true });
  }

  closeDetail() {
    const id = this.detailId;
    this.detailId = null;
    this.detail.hidden = true;
    this.detail.replaceChildren();
    this.onRender();
    const opener = id && this.body.querySelector(`tr[data-id="${CSS.escape(id)}"] [data-testid="delivery-open"]`);
    if (opener) opener.focus();
  }

  reloadDetailSoon() {
    clearTimeout(this.detailTimer);
    this.detailTimer = setTimeout(() => this.loadDetail({ focus: false }), 300);
  }

  async loadDetail({ focus }) {
    const id = this.detailId;
    if (!id) return;
    let delivery;
    try {
      delivery = (await this.client.request(Q_DETAIL, { id })).delivery;
    } catch (error) {
      if (this.detailId === id) this.detail.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    if (this.detailId !== id) return;
    if (!delivery) {
      this.detail.replaceChildren(el("p", { class: "error", text: "This delivery no longer exists." }));
      return;
    }
    this.renderDetail(delivery);
    if (focus) {
      const heading = this.detail.querySelector("h3");
      if (heading) heading.focus();
    }
    this.onRender();
  }

  renderDetail(d) {
    const heading = el("h3", { tabindex: "-1", "data-testid": "delivery-detail-title",
      text: `${d.eventType}${d.isTest ? " (test)" : ""} → ${d.integration ? d.integration.name : ""}` });
    const facts = el("dl", { class: "facts" },
      ...[["Status", badge(d.status, "delivery-detail-status")], ["Delivery", el("code", { text: d.id })],
        ["Form", d.form ? `${d.form.name} (${d.form.slug})` : "—"], ["Created", formatDateTime(d.createdAt)],
        ["Delivered", formatDateTime(d.deliveredAt)], ["Next attempt", formatDateTime(d.nextAttemptAt)],
        ["Waiting", waitingNote(d) || "—"],
        ["Attempts", String(d.attemptCount)], ["Response", d.responseCode ?? "—"],
        ["Duration", d.durationMs == null ? "—" : `${d.durationMs} ms`], ["Error", d.errorMessage || "—"]]
        .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
    const actions = el("div", { class: "row" });
    if (!IN_FLIGHT.has(d.status)) {
      const again = el("button", { type: "button", "data-testid": "delivery-detail-retry",
        text: d.status === "FAILED" ? "Retry" : "Send again" });
      again.addEventListener("click", async () => {
        await this.retry(d.id, again);
        this.reloadDetailSoon();
      });
      actions.append(again);
    }
    actions.append(el("button", { type: "button", class: "secondary", "data-testid": "delivery-detail-close",
      text: "Close", onclick: () => this.closeDetail() }));
    const attempts = el("table", { class: "responsive compact", "data-testid": "delivery-detail-attempts" },
      el("caption", { text: "Attempts" }),
      el("thead", {}, el("tr", {}, ...["#", "Trigger", "Response", "Duration", "Error", "At"]
        .map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...d.attempts.map((a) => el("tr", { "data-testid": "delivery-attempt" },
        el("td", { "data-label": "#", text: String(a.number) }),
        el("td", { "data-label": "Trigger", text: a.trigger }),
        el("td", { "data-label": "Response" }, String(a.responseCode ?? "—"),
          a.responseBody || a.responseHeaders ? el("details", {},
            el("summary", { text: "body" }),
            el("pre", { text: `${prettyJson(a.responseHeaders)}\n\n${a.responseBody || ""}` })) : null),
        el("td", { "data-label": "Duration", text: a.durationMs == null ? "—" : `${a.durationMs} ms` }),
        el("td", { "data-label": "Error", text: a.errorMessage || "" }),
        el("td", { "data-label": "At", text: formatDateTime(a.createdAt) })))));
    const block = (title, value, testid) => el("details", { class: "block", open: true },
      el("summary", { text: title }), el("pre", { "data-testid": testid, tabindex: "0", text: prettyJson(value) }));
    this.detail.replaceChildren(heading, actions, facts,
      block("Event payload", d.event ? d.event.payload : null, "delivery-detail-payload"),
      block("Request", d.request, "delivery-detail-request"),
      block("Response", d.response, "delivery-detail-response"),
      attempts);
  }
}
