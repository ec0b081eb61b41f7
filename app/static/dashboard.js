// Hookyard dashboard: integrations and a live delivery log, over the same GraphQL API as any client.
// No build step and no dependencies; live updates speak graphql-transport-ws directly.

const TOKEN_KEY = "hookyard.token";
const WORKSPACE_KEY = "hookyard.workspace";
const GRAPHQL_PATH = "/graphql";
const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;

const DELIVERY_FIELDS = `
  id status eventType attemptCount responseCode createdAt updatedAt errorMessage isTest
  integration { id name }`;

const Q_VIEWER = `{ viewer { user { email } workspaces { slug name } } }`;
const Q_WORKSPACE = `query($slug: String!) { workspace(slug: $slug) {
  integrations(first: 100) { edges { node { id name type status enabled } } }
  deliveries(first: 50) { edges { node { ${DELIVERY_FIELDS} } } } } }`;
const M_TEST = `mutation($id: ID!) { integrationTest(input: {id: $id}) {
  result { success responseCode durationMs errorMessage } delivery { ${DELIVERY_FIELDS} }
  errors { field message code } } }`;
const M_RETRY = `mutation($id: ID!) { deliveryRetry(input: {id: $id}) {
  queued delivery { ${DELIVERY_FIELDS} } errors { field message code } } }`;
const S_UPDATES = `subscription($ws: String!) { deliveryUpdates(workspace: $ws) {
  status at delivery { ${DELIVERY_FIELDS} } attempt { number responseCode errorMessage } } }`;

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  workspace: "",
  deliveries: new Map(), // id -> delivery as last rendered
  testResults: new Map(), // integration id -> {text, success}
  live: null,
};

// ---------------------------------------------------------------------------------------------
// HTTP GraphQL

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function gql(query, variables = {}) {
  const response = await fetch(GRAPHQL_PATH, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
    body: JSON.stringify({ query, variables }),
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status}`, "HTTP");
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    throw new ApiError(first.message, first.extensions && first.extensions.code);
  }
  return body.data;
}

function payloadErrors(payload) {
  return (payload.errors || []).map((e) => `${e.field ? e.field + ": " : ""}${e.message}`).join("; ");
}

// ---------------------------------------------------------------------------------------------
// graphql-transport-ws client (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md)

class LiveConnection {
  constructor({ url, token, query, variables, onNext, onError, onState, onResubscribed }) {
    Object.assign(this, { url, token, query, variables, onNext, onError, onState, onResubscribed });
    this.closed = false;
    this.retries = 0;
    this.socket = null;
    this.subscriptionId = null;
    this.counter = 0;
    this.timers = [];
    this.open();
  }

  open() {
    if (this.closed) return;
    this.onState("connecting");
    const socket = new WebSocket(this.url, "graphql-transport-ws");
    this.socket = socket;
    let acknowledged = false;
    socket.addEventListener("open", () => {
      this.send({ type: "connection_init", payload: { authorization: `Bearer ${this.token}` } });
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        socket.close(4400, "invalid message");
        return;
      }
      switch (message.type) {
        case "connection_ack":
          acknowledged = true;
          this.retries = 0;
          this.subscribe();
          this.startPings();
          this.onState("live");
          break;
        case "ping":
          this.send({ type: "pong" });
          break;
        case "pong":
          this.lastPong = Date.now();
          break;
        case "next":
          if (message.id !== this.subscriptionId) break;
          if (message.payload && message.payload.errors && message.payload.errors.length) {
            this.onError(message.payload.errors[0]);
          }
          if (message.payload && message.payload.data) this.onNext(message.payload.data);
          break;
        case "error":
          if (message.id !== this.subscriptionId) break;
          this.subscriptionId = null;
          this.onError((message.payload && message.payload[0]) || { message: "subscription failed" });
          this.closed = true; // a refused subscription will be refused again: stop here
          socket.close(1000, "subscription refused");
          break;
        case "complete":
          if (message.id !== this.subscriptionId) break;
          // The server ended the stream (e.g. it restarted or we were too slow): subscribe again.
          this.subscriptionId = null;
          if (!this.closed) this.subscribe();
          break;
        default:
          break;
      }
    });
    socket.addEventListener("close", (event) => {
      this.stopPings();
      this.subscriptionId = null;
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.closed) {
        this.onState("offline");
        return;
      }
      if (event.code === 4403 || event.code === 4401 || (!acknowledged && event.code === 4400)) {
        this.closed = true;
        this.onState("error");
        this.onError({ message: "the server refused this token for live updates", extensions: { code: "UNAUTHENTICATED" } });
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** this.retries) * (0.8 + Math.random() * 0.4);
      this.retries += 1;
      this.onState("connecting");
      this.timers.push(setTimeout(() => this.open(), delay));
    });
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  subscribe() {
    this.counter += 1;
    this.subscriptionId = `updates-${this.counter}`;
    this.send({ id: this.subscriptionId, type: "subscribe", payload: { query: this.query, variables: this.variables } });
    this.onResubscribed();
  }

  startPings() {
    this.stopPings();
    this.lastPong = Date.now();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastPong > PING_EVERY_MS + PONG_WITHIN_MS) {
        // No pong: the connection is dead even if the socket does not know yet.
        if (this.socket) this.socket.close(4408, "pong timeout");
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  stopPings() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  close() {
    this.closed = true;
    this.stopPings();
    this.timers.forEach(clearTimeout);
    if (this.socket) {
      if (this.subscriptionId) this.send({ id: this.subscriptionId, type: "complete" });
      this.socket.close(1000, "bye");
    }
    this.onState("offline");
  }
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${GRAPHQL_PATH}`;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function badge(status, testid) {
  return el("span", { class: `badge ${status}`, "data-testid": testid, text: status });
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function setLiveState(value) {
  const tag = document.querySelector('[data-testid="live-status"]');
  tag.dataset.state = value;
  tag.textContent = value;
}

function renderIntegrations(integrations) {
  const body = $("integrations-body");
  body.replaceChildren();
  $("integrations-empty").hidden = integrations.length > 0;
  for (const integration of integrations) {
    const result = el("td", { "data-testid": "integration-test-result", class: "muted" });
    const shown = state.testResults.get(integration.id);
    if (shown) {
      result.textContent = shown.text;
      if (shown.success !== undefined) result.dataset.success = String(shown.success);
    }
    const remember = (text, success) => {
      state.testResults.set(integration.id, { text, success });
      // The row may have been re-rendered meanwhile: update whichever cell is current.
      const row = $("integrations-body").querySelector(`tr[data-id="${CSS.escape(integration.id)}"]`);
      const cell = row ? row.querySelector('[data-testid="integration-test-result"]') : result;
      cell.textContent = text;
      if (success !== undefined) cell.dataset.success = String(success);
    };
    const button = el("button", { type: "button", "data-testid": "integration-test", text: "Send test" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      remember("sending…");
      try {
        const data = await gql(M_TEST, { id: integration.id });
        const payload = data.integrationTest;
        if (payload.errors.length) {
          remember(payloadErrors(payload));
        } else {
          const r = payload.result;
          remember(r.success
            ? `OK ${r.responseCode ?? ""} in ${r.durationMs ?? "?"} ms`
            : `Failed: ${r.errorMessage || r.responseCode || "unknown error"}`, r.success);
          if (payload.delivery) upsertDelivery(payload.delivery, { fromList: true });
        }
      } catch (error) {
        remember(error.message);
      } finally {
        button.disabled = false;
      }
    });
    body.append(el("tr", { "data-testid": "integration-row", "data-id": integration.id },
      el("td", { "data-testid": "integration-name", text: integration.name }),
      el("td", { "data-testid": "integration-type", text: integration.type }),
      el("td", {}, badge(integration.enabled ? integration.status : "OFF", "integration-status")),
      el("td", {}, button),
      result));
  }
}

function deliveryRow(delivery) {
  const cells = [
    el("td", {}, badge(delivery.status, "delivery-status")),
    el("td", { "data-testid": "delivery-event", text: delivery.eventType + (delivery.isTest ? " (test)" : "") }),
    el("td", { "data-testid": "delivery-integration", text: delivery.integration ? delivery.integration.name : "" }),
    el("td", { "data-testid": "delivery-response-code", text: delivery.responseCode ?? "—",
               title: delivery.errorMessage || "" }),
    el("td", { "data-testid": "delivery-attempts", text: String(delivery.attemptCount) }),
    el("td", { class: "muted", text: new Date(delivery.createdAt).toLocaleTimeString() }),
  ];
  const actions = el("td", { "data-testid": "delivery-actions" });
  if (delivery.status === "FAILED") {
    const retry = el("button", { type: "button", "data-testid": "delivery-retry", text: "Retry" });
    retry.addEventListener("click", () => retryDelivery(delivery.id, retry));
    actions.append(retry);
  }
  cells.push(actions);
  return el("tr", { "data-testid": "delivery-row", "data-id": delivery.id, "data-status": delivery.status }, ...cells);
}

function stamp(delivery) {
  const t = Date.parse(delivery.updatedAt);
  return Number.isNaN(t) ? 0 : t;
}

// Live updates always win (they arrive in order); list and mutation results only when newer.
function upsertDelivery(delivery, { fromList = false } = {}) {
  const known = state.deliveries.get(delivery.id);
  if (known && fromList && stamp(delivery) <= stamp(known)) return;
  state.deliveries.set(delivery.id, delivery);
  const body = $("deliveries-body");
  const row = deliveryRow(delivery);
  const existing = body.querySelector(`tr[data-id="${CSS.escape(delivery.id)}"]`);
  if (existing) {
    existing.replaceWith(row);
  } else {
    // Newest first: IDs are time-sortable.
    const after = [...body.children].find((tr) => tr.dataset.id < delivery.id);
    body.insertBefore(row, after || null);
    while (body.children.length > 200) {
      const last = body.lastElementChild;
      state.deliveries.delete(last.dataset.id);
      last.remove();
    }
  }
  if (!fromList) {
    row.classList.add("flash");
  }
  $("deliveries-empty").hidden = body.children.length > 0;
}

async function retryDelivery(id, button) {
  button.disabled = true;
  button.textContent = "Queued…";
  try {
    const payload = (await gql(M_RETRY, { id })).deliveryRetry;
    if (payload.errors.length) {
      showError(payloadErrors(payload));
      button.disabled = false;
      button.textContent = "Retry";
      return;
    }
    if (payload.delivery) upsertDelivery(payload.delivery, { fromList: true });
  } catch (error) {
    showError(error.message);
    button.disabled = false;
    button.textContent = "Retry";
  }
}

// ---------------------------------------------------------------------------------------------
// Flow

const Q_INTEGRATIONS = `query($slug: String!) { workspace(slug: $slug) {
  integrations(first: 100) { edges { node { id name type status enabled } } } } }`;
let integrationsTimer = null;

// A settled delivery may change its integration's health: refresh that list shortly after.
function refreshIntegrationsSoon(slug) {
  clearTimeout(integrationsTimer);
  integrationsTimer = setTimeout(async () => {
    try {
      const data = await gql(Q_INTEGRATIONS, { slug });
      if (state.workspace === slug) renderIntegrations(data.workspace.integrations.edges.map((e) => e.node));
    } catch (error) {
      showError(error.message);
    }
  }, 500);
}

async function loadWorkspace(slug) {
  const data = await gql(Q_WORKSPACE, { slug });
  if (state.workspace !== slug) return; // switched meanwhile
  renderIntegrations(data.workspace.integrations.edges.map((e) => e.node));
  for (const edge of [...data.workspace.deliveries.edges].reverse()) upsertDelivery(edge.node, { fromList: true });
  $("deliveries-empty").hidden = $("deliveries-body").children.length > 0;
}

function selectWorkspace(slug) {
  if (state.live) state.live.close();
  state.live = null;
  state.workspace = slug;
  state.deliveries.clear();
  state.testResults.clear();
  $("deliveries-body").replaceChildren();
  $("integrations-body").replaceChildren();
  showError("");
  if (!slug) return;
  sessionStorage.setItem(WORKSPACE_KEY, slug);
  // Subscribe first, then load: nothing that happens in between is lost, and each (re)subscription
  // reloads the list to catch up on what happened while disconnected.
  state.live = new LiveConnection({
    url: wsUrl(),
    token: state.token,
    query: S_UPDATES,
    variables: { ws: slug },
    onNext: (data) => {
      if (state.workspace !== slug) return;
      upsertDelivery(data.deliveryUpdates.delivery);
      if (["SUCCEEDED", "FAILED", "HELD"].includes(data.deliveryUpdates.status)) refreshIntegrationsSoon(slug);
    },
    onError: (error) => showError(`Live updates: ${error.message}`),
    onState: setLiveState,
    onResubscribed: () => loadWorkspace(slug).catch((error) => showError(error.message)),
  });
}

async function useToken(token) {
  state.token = token.trim();
  const select = $("workspace-select");
  select.replaceChildren(el("option", { value: "", text: "— choose a workspace —" }));
  select.disabled = true;
  selectWorkspace("");
  if (!state.token) return;
  try {
    const data = await gql(Q_VIEWER);
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("viewer").textContent = data.viewer.user.email;
    for (const ws of data.viewer.workspaces) {
      select.append(el("option", { value: ws.slug, text: `${ws.name} (${ws.slug})` }));
    }
    select.disabled = false;
    showError("");
    const remembered = sessionStorage.getItem(WORKSPACE_KEY);
    const slugs = data.viewer.workspaces.map((w) => w.slug);
    if (slugs.includes(remembered)) {
      select.value = remembered;
      selectWorkspace(remembered);
    }
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("viewer").textContent = "";
    showError(error.code === "UNAUTHENTICATED" ? "That token is not valid." : error.message);
  }
}

function main() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken($("token-input").value);
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WORKSPACE_KEY);
    $("token-input").value = "";
    $("viewer").textContent = "";
    useToken("");
  });
  $("workspace-select").addEventListener("change", (event) => selectWorkspace(event.target.value));
  if (state.token) {
    $("token-input").value = state.token;
    useToken(state.token);
  }
}

main();
