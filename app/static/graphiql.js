// GraphiQL for Hookyard's API, with assets served by Hookyard (see /static/vendor). Queries and mutations go
// over HTTP with the headers from the header editor; subscriptions over graphql-transport-ws, with the
// editor's Authorization header as connectionParams.authorization.

import { GraphQLClient, TransportWsClient, subscriptionIterator, wsUrlFor } from "./ui/graphql.js";

const ENDPOINT = "/graphql";
const DEFAULT_HEADERS = "{}";
const DEFAULT_QUERY = `# Put your token in the Headers tab below: {"Authorization": "Bearer hyk_…"}, then run this query.
query Me {
  viewer {
    user { email }
    workspaces { slug name plan viewerRole }
  }
}

# Live delivery status (runs over the WebSocket):
# subscription Updates {
#   deliveryUpdates(workspace: "default") {
#     status at delivery { id eventType attemptCount responseCode }
#   }
# }
`;

/** The kind (query, mutation, subscription) of the operation that will run. */
export function operationKind(source, operationName) {
  // Drop block strings, strings and comments, so that words inside them do not count.
  const text = String(source || "").replace(/"""[\s\S]*?"""/g, " ").replace(/"(?:[^"\\\n]|\\.)*"/g, " ")
    .replace(/#[^\n]*/g, " ");
  const tokens = text.match(/[_A-Za-z][_0-9A-Za-z]*|[{}()]/g) || [];
  const ops = [];
  let depth = 0;
  let parens = 0;
  let pending = null; // a definition keyword seen at the top level, waiting for its "{"
  tokens.forEach((token, i) => {
    if (token === "(") parens += 1;
    else if (token === ")") parens -= 1;
    else if (token === "{") {
      if (depth === 0 && parens === 0 && !pending) ops.push({ kind: "query", name: null }); // { … } shorthand
      if (parens === 0) pending = null;
      depth += 1;
    } else if (token === "}") depth -= 1;
    else if (depth === 0 && parens === 0 && !pending && /^(query|mutation|subscription|fragment)$/.test(token)) {
      pending = token;
      const next = tokens[i + 1];
      if (token !== "fragment") ops.push({ kind: token, name: next && /^[_A-Za-z]/.test(next) ? next : null });
    }
  });
  const op = operationName ? ops.find((o) => o.name === operationName) : ops[0];
  return op ? op.kind : "query";
}

function authorizationOf(headers) {
  for (const [key, value] of Object.entries(headers || {})) if (key.toLowerCase() === "authorization") return value;
  return null;
}

async function fetcher(params, options = {}) {
  const headers = (options && options.headers) || {};
  if (operationKind(params.query, params.operationName) === "subscription") {
    const authorization = authorizationOf(headers);
    const ws = new TransportWsClient({ url: wsUrlFor(ENDPOINT), retry: false,
      connectionParams: authorization ? { authorization } : {} });
    return subscriptionIterator(ws, { query: params.query, variables: params.variables, operationName: params.operationName });
  }
  const http = new GraphQLClient({ endpoint: ENDPOINT });
  return http.execute(params.query, params.variables || {}, { headers, operationName: params.operationName || undefined });
}

function start() {
  const container = document.getElementById("graphiql");
  const { React, ReactDOM, GraphiQL } = window;
  if (!React || !ReactDOM || !GraphiQL) {
    container.replaceChildren();
    const p = document.createElement("p");
    p.className = "graphiql-missing";
    p.innerHTML = "GraphiQL's files are not installed on this server: run <code>npm ci</code> in Hookyard's "
      + "directory (it fills <code>node_modules/</code>). The API itself works: POST queries to <code>/graphql</code>.";
    container.append(p);
    return;
  }
  ReactDOM.createRoot(container).render(React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: DEFAULT_QUERY,
    defaultHeaders: DEFAULT_HEADERS,
    shouldPersistHeaders: false,
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: "headers",
  }));
}

start();
