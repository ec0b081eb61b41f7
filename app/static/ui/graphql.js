// GraphQL over HTTP (fetch) and over WebSocket (graphql-transport-ws), shared by every Hookyard page.
// Protocol: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md

const PING_EVERY_MS = 15000;
const PONG_WITHIN_MS = 10000;
const ACK_WITHIN_MS = 10000;

export class ApiError extends Error {
  constructor(message, code, { errors = [], status = 0 } = {}) {
    super(message);
    this.code = code || null;
    this.errors = errors;
    this.status = status;
  }
}

/** The message of a refused mutation payload: "config.url: must be https; events.1: …". */
export function userErrors(payload) {
  return ((payload && payload.errors) || []).map((e) => `${e.field ? e.field + ": " : ""}${e.message}`).join("; ");
}

/** ws:// or wss:// URL of a GraphQL endpoint given as a path or an absolute http(s) URL. */
export function wsUrlFor(endpoint) {
  const url = new URL(endpoint, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  return url.toString();
}

export class GraphQLClient {
  /**
   * @param {object} options
   * @param {string} [options.endpoint] "/graphql" by default, resolved against the page
   * @param {string} [options.token] sent as `Authorization: Bearer <token>`
   * @param {(error: ApiError) => void} [options.onAuthError] called when the API answers UNAUTHENTICATED
   */
  constructor({ endpoint = "/graphql", token = "", onAuthError = null } = {}) {
    this.endpoint = new URL(endpoint, location.href).toString();
    this.token = token;
    this.onAuthError = onAuthError;
  }

  get wsUrl() {
    return wsUrlFor(this.endpoint);
  }

  /** `connectionParams` for the WebSocket: the same token, as the server expects it. */
  get connectionParams() {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  setToken(token) {
    this.token = token || "";
  }

  /** The whole ExecutionResult ({data, errors}); throws only when there is no GraphQL answer at all. */
  async execute(query, variables = {}, { headers = {}, operationName = undefined, signal = undefined } = {}) {
    const sent = { "Content-Type": "application/json", Accept: "application/json", ...headers };
    if (this.token && !Object.keys(sent).some((k) => k.toLowerCase() === "authorization")) {
      sent.Authorization = `Bearer ${this.token}`;
    }
    let response;
    try {
      response = await fetch(this.endpoint, {
        method: "POST", headers: sent, body: JSON.stringify({ query, variables, operationName }),
        credentials: "omit", signal,
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError("The server could not be reached.", "NETWORK");
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`HTTP ${response.status}`, "HTTP", { status: response.status });
    }
    if (!body || typeof body !== "object") throw new ApiError(`HTTP ${response.status}`, "HTTP", { status: response.status });
    return body;
  }

  /** `data` of a request; the first GraphQL error as an ApiError (code from extensions.code). */
  async request(query, variables = {}, options = {}) {
    const body = await this.execute(query, variables, options);
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      const code = first.extensions && first.extensions.code;
      const error = new ApiError(first.message, code, { errors: body.errors });
      if (code === "UNAUTHENTICATED" && this.onAuthError) this.onAuthError(error);
      throw error;
    }
    return body.data;
  }
}

/**
 * A graphql-transport-ws client: one socket for any number of subscriptions, opened on the first one and
 * closed after the last. With `retry` it reconnects with backoff after a drop and subscribes everything
 * again; `sink.resubscribed()` tells each subscription it was (re)started, so it can read what it missed.
 * 4401/4403 (and 4400 before the server acknowledged) are final: every sink gets an UNAUTHENTICATED error.
 */
export class TransportWsClient {
  constructor({ url, connectionParams = {}, retry = true, onState = () => {} }) {
    this.url = url;
    this.connectionParams = connectionParams;
    this.retry = retry;
    this.onState = onState;
    this.subs = new Map(); // id -> {payload, sink, persistent}
    this.socket = null;
    this.acknowledged = false;
    this.closed = false;
    this.retries = 0;
    this.counter = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.ackTimer = null;
    this.state = "offline";
  }

  setState(value) {
    if (this.state === value) return;
    this.state = value;
    this.onState(value);
  }

  /**
   * @param {{query: string, variables?: object, operationName?: string}} payload
   * @param {{next: (result) => void, error?: (errors) => void, complete?: () => void, resubscribed?: () => void}} sink
   * @param {{persistent?: boolean}} options persistent: when the server completes it, subscribe again
   * @returns {() => void} stops this subscription
   */
  subscribe(payload, sink, { persistent = false } = {}) {
    if (this.closed) {
      (sink.error || (() => {}))([{ message: "the connection is closed" }]);
      return () => {};
    }
    const id = this.nextId();
    const sub = { payload, sink, persistent };
    this.subs.set(id, sub);
    if (this.socket && this.acknowledged) this.start(id, sub);
    else this.connect();
    return () => this.stop(sub);
  }

  nextId() {
    this.counter += 1;
    return `s${this.counter}`;
  }

  idOf(sub) {
    for (const [id, s] of this.subs) if (s === sub) return id;
    return null;
  }

  start(id, sub) {
    this.send({ id, type: "subscribe", payload: sub.payload });
    if (sub.sink.resubscribed) sub.sink.resubscribed();
  }

  stop(sub) {
    const id = this.idOf(sub);
    if (id === null) return;
    this.subs.delete(id);
    this.send({ id, type: "complete" });
    this.closeIfIdle();
  }

  closeIfIdle() {
    if (this.subs.size || !this.socket) return;
    const socket = this.socket;
    this.socket = null;
    this.stopPings();
    socket.close(1000, "idle");
    this.setState("offline");
  }

  connect() {
    if (this.closed || this.socket || this.reconnectTimer) return;
    this.setState("connecting");
    const socket = new WebSocket(this.url, "graphql-transport-ws");
    this.socket = socket;
    this.acknowledged = false;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: this.connectionParams }));
      // A server (or proxy) that never acknowledges would leave us waiting for good: try again instead.
      this.ackTimer = setTimeout(() => {
        if (socket === this.socket && !this.acknowledged) socket.close(4408, "no connection_ack");
      }, ACK_WITHIN_MS);
    });
    socket.addEventListener("message", (event) => this.receive(socket, event));
    socket.addEventListener("close", (event) => this.dropped(socket, event));
  }

  receive(socket, event) {
    if (socket !== this.socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      socket.close(4400, "invalid message");
      return;
    }
    const sub = message.id !== undefined ? this.subs.get(message.id) : null;
    switch (message.type) {
      case "connection_ack":
        clearTimeout(this.ackTimer);
        this.acknowledged = true;
        this.retries = 0;
        this.startPings();
        this.setState("live");
        for (const [id, s] of [...this.subs]) {
          // Subscribe under fresh ids: the old ones may still be known to a server that has not noticed the drop.
          this.subs.delete(id);
          const fresh = this.nextId();
          this.subs.set(fresh, s);
          this.start(fresh, s);
        }
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        this.lastPong = Date.now();
        break;
      case "next":
        if (sub) sub.sink.next(message.payload || {});
        break;
      case "error":
        if (!sub) break;
        this.subs.delete(message.id);
        if (sub.sink.error) sub.sink.error(Array.isArray(message.payload) ? message.payload : [{ message: "subscription failed" }]);
        this.closeIfIdle();
        break;
      case "complete":
        if (!sub) break;
        this.subs.delete(message.id);
        if (sub.persistent && !this.closed) {
          // The server ended the stream (it restarted it, or we fell behind): subscribe again.
          const fresh = this.nextId();
          this.subs.set(fresh, sub);
          this.start(fresh, sub);
        } else {
          if (sub.sink.complete) sub.sink.complete();
          this.closeIfIdle();
        }
        break;
      default:
        break;
    }
  }

  dropped(socket, event) {
    if (socket !== this.socket) return; // closed on purpose (idle or close())
    clearTimeout(this.ackTimer);
    this.socket = null;
    this.stopPings();
    const wasAcknowledged = this.acknowledged;
    this.acknowledged = false;
    if (this.closed) {
      this.setState("offline");
      return;
    }
    if (event.code === 4401 || event.code === 4403 || (!wasAcknowledged && event.code === 4400)) {
      this.closed = true;
      this.setState("error");
      const error = { message: event.reason || "the server refused these credentials for live updates",
        extensions: { code: "UNAUTHENTICATED", closeCode: event.code } };
      this.failAll([error]);
      return;
    }
    // Subscriptions that do not survive a drop end here; persistent ones wait for the next connection.
    for (const [id, s] of [...this.subs]) {
      if (s.persistent && this.retry) continue;
      this.subs.delete(id);
      if (s.sink.error) s.sink.error([{ message: `the connection closed (${event.code}${event.reason ? ": " + event.reason : ""})` }]);
    }
    if (!this.subs.size) {
      this.setState("offline");
      return;
    }
    const delay = Math.min(30000, 500 * 2 ** this.retries) * (0.8 + Math.random() * 0.4);
    this.retries += 1;
    this.setState("connecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  failAll(errors) {
    const subs = [...this.subs.values()];
    this.subs.clear();
    for (const s of subs) if (s.sink.error) s.sink.error(errors);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
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

  /** Ends every subscription and the connection for good. */
  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopPings();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      for (const id of this.subs.keys()) {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ id, type: "complete" }));
      }
      socket.close(1000, "bye");
    }
    this.subs.clear();
    this.setState("offline");
  }
}

/** One subscription as an async iterator of ExecutionResults (for GraphiQL's fetcher). The iterator owns
 * `client`: ending it closes the client. */
export function subscriptionIterator(client, payload) {
  const queue = [];
  let waiting = null;
  let done = false;
  let failure = null;
  const wake = () => {
    if (waiting) {
      const resolve = waiting;
      waiting = null;
      resolve();
    }
  };
  const stop = client.subscribe(payload, {
    next: (result) => { queue.push(result); wake(); },
    error: (errors) => { failure = errors; done = true; wake(); },
    complete: () => { done = true; wake(); },
  });
  return {
    [Symbol.asyncIterator]() { return this; },
    async next() {
      for (;;) {
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) {
          const errors = failure;
          failure = null;
          return { value: { errors }, done: false };
        }
        if (done) return { value: undefined, done: true };
        await new Promise((resolve) => { waiting = resolve; });
      }
    },
    async return() {
      done = true;
      stop();
      client.close();
      return { value: undefined, done: true };
    },
  };
}
