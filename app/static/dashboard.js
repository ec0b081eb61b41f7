// Hookyard dashboard: an operator pastes a token and works in one of its workspaces. Everything below the
// token form comes from the shared modules in ./ui/, which the customer portal uses too.

import { GraphQLClient } from "./ui/graphql.js";
import { announcer, byId, el } from "./ui/dom.js";
import { mountWorkspace } from "./ui/workspace.js";

const TOKEN_KEY = "hookyard.token";
const WORKSPACE_KEY = "hookyard.workspace";
const Q_VIEWER = `{ viewer { user { email } workspaces { slug name } } }`;

const state = { workspace: "", mounted: null };
const client = new GraphQLClient({
  endpoint: "/graphql",
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  onAuthError: () => {
    if (state.workspace) showError("This token is no longer valid: paste another one.");
  },
});
const announce = announcer(byId("announcer-root"));

function showError(message) {
  const box = byId("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function setLiveState(value) {
  const tag = document.querySelector('[data-testid="live-status"]');
  tag.dataset.state = value;
  tag.textContent = value;
}

function selectWorkspace(slug) {
  if (slug === state.workspace && (state.mounted || !slug)) return;
  if (state.mounted) state.mounted.close();
  state.mounted = null;
  state.workspace = slug;
  showError("");
  for (const id of ["integrations-root", "connect-root", "deliveries-root"]) byId(id).replaceChildren();
  for (const section of document.querySelectorAll("[data-needs-workspace]")) section.hidden = !slug;
  setLiveState("offline");
  if (!slug) return;
  sessionStorage.setItem(WORKSPACE_KEY, slug);
  state.mounted = mountWorkspace({
    client,
    workspace: slug,
    roots: { integrations: byId("integrations-root"), connect: byId("connect-root"), deliveries: byId("deliveries-root") },
    onError: showError,
    onLiveState: setLiveState,
    onExpired: () => showError("Live updates: the server refused this token."),
    announce,
  });
}

async function useToken(token) {
  client.setToken(token.trim());
  const select = byId("workspace-select");
  select.replaceChildren(el("option", { value: "", text: "— choose a workspace —" }));
  select.disabled = true;
  selectWorkspace("");
  if (!client.token) return;
  try {
    const data = await client.request(Q_VIEWER);
    sessionStorage.setItem(TOKEN_KEY, client.token);
    byId("viewer").textContent = data.viewer.user.email;
    for (const ws of data.viewer.workspaces) {
      select.append(el("option", { value: ws.slug, text: `${ws.name} (${ws.slug})` }));
    }
    select.disabled = false;
    showError("");
    const slugs = data.viewer.workspaces.map((w) => w.slug);
    const remembered = sessionStorage.getItem(WORKSPACE_KEY);
    // One workspace: nothing to choose. Several: the one chosen last in this tab, if any.
    const pick = slugs.length === 1 ? slugs[0] : slugs.includes(remembered) ? remembered : "";
    if (!slugs.length) showError("This token has no workspace.");
    if (pick) {
      select.value = pick;
      selectWorkspace(pick);
    }
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    byId("viewer").textContent = "";
    showError(error.code === "UNAUTHENTICATED" ? "That token is not valid." : error.message);
  }
}

function main() {
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken(byId("token-input").value);
  });
  byId("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WORKSPACE_KEY);
    byId("token-input").value = "";
    byId("viewer").textContent = "";
    useToken("");
  });
  byId("workspace-select").addEventListener("change", (event) => selectWorkspace(event.target.value));
  if (client.token) {
    byId("token-input").value = client.token;
    useToken(client.token);
  }
}

main();
