// Hookyard customer portal: the integrations of ONE workspace, for the product's customer, in an iframe.
//
// The host product's backend makes a portal session (portalSessionCreate) and frames the portalUrl it
// gets: /portal?session=pss_…#token=hyp_…. The token comes in the URL fragment, which never reaches a
// server. It is read once, the fragment is cleared, and the token lives in memory only: no localStorage,
// no cookies. The session tells the page its workspace, theme and expiry. The page talks to /graphql on
// its own origin. After every change it posts its height to the parent ({type: "hookyard:resize",
// height}) so portal-embed.js can size the iframe.

import { GraphQLClient } from "./ui/graphql.js";
import { announcer, byId } from "./ui/dom.js";
import { mountWorkspace } from "./ui/workspace.js";

const Q_SESSION = `{ portalSession { workspace theme expiresAt } viewer { workspaces { slug name } } }`;
// setTimeout's longest delay; a session lasts at most a day anyway.
const MAX_TIMER_MS = 2 ** 31 - 1;
const THEME_KEY_RE = /^[a-z][a-z0-9-]{0,40}$/;
const MAX_THEME_KEYS = 40;

/** The session token from the fragment; the fragment is then removed from the address. */
export function takeToken() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (location.hash) history.replaceState(history.state, "", location.pathname + location.search);
  return params.get("token") || "";
}

/** Sets --hy-<name> on :root for each {name: value} (names with or without "--hy-"). Values that could
 * load anything (url(), image-set(), expressions) are ignored. */
export function applyTheme(theme) {
  if (!theme || typeof theme !== "object" || Array.isArray(theme)) return;
  const root = document.documentElement.style;
  for (const [rawKey, rawValue] of Object.entries(theme).slice(0, MAX_THEME_KEYS)) {
    const key = String(rawKey).replace(/^--/, "").replace(/^hy-/, "");
    if (!THEME_KEY_RE.test(key)) continue;
    if (typeof rawValue !== "string" && typeof rawValue !== "number") continue;
    const value = String(rawValue).trim();
    if (!value || value.length > 200 || /[;{}<>\\]|url\(|image|expression/i.test(value)) continue;
    root.setProperty(`--hy-${key}`, value);
  }
}

// ---------------------------------------------------------------------------------------------- height

let lastHeight = -1;
let heightFrame = 0;

function postHeight() {
  heightFrame = 0;
  if (window.parent === window) return;
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height === lastHeight) return;
  lastHeight = height;
  // Only a number leaves the page; any parent may know how tall it is.
  window.parent.postMessage({ type: "hookyard:resize", height }, "*");
}

function rendered() {
  if (!heightFrame) heightFrame = requestAnimationFrame(postHeight);
}

// ---------------------------------------------------------------------------------------------- screens

let mounted = null;
let client = null;

function showError(message) {
  const box = byId("portal-error");
  box.textContent = message || "";
  box.hidden = !message;
  rendered();
}

function setLiveState(value) {
  const tag = document.querySelector('[data-testid="live-status"]');
  tag.dataset.state = value;
  tag.textContent = value;
}

function expire() {
  if (mounted) mounted.close();
  mounted = null;
  if (client) client.setToken(""); // forget it
  byId("portal-main").hidden = true;
  byId("portal-loading").hidden = true;
  byId("portal-error").hidden = true;
  for (const id of ["integrations-root", "connect-root", "deliveries-root"]) byId(id).replaceChildren();
  setLiveState("offline");
  const screen = byId("portal-expired");
  screen.hidden = false;
  screen.setAttribute("tabindex", "-1");
  screen.focus();
  rendered();
}

async function start() {
  new ResizeObserver(rendered).observe(document.documentElement);
  const token = takeToken();
  if (!token) {
    expire();
    return;
  }
  client = new GraphQLClient({ endpoint: "/graphql", token, onAuthError: expire });
  const announce = announcer(byId("announcer-root"));
  let answer;
  try {
    answer = await client.request(Q_SESSION);
  } catch (error) {
    if (error.code !== "UNAUTHENTICATED") showError(error.message);
    byId("portal-loading").hidden = true;
    rendered();
    return;
  }
  byId("portal-loading").hidden = true;
  const session = answer.portalSession;
  if (!session) {
    client.setToken(""); // an API token has no business in a browser: forget it
    showError("The portal opens with a portal session token (hyp_…) made by portalSessionCreate, not an API token.");
    return;
  }
  applyTheme(session.theme);
  const workspace = answer.viewer.workspaces.find((w) => w.slug === session.workspace);
  if (!workspace) {
    showError(`This session has no access to the workspace “${session.workspace}”.`);
    return;
  }
  const left = Date.parse(session.expiresAt) - Date.now();
  setTimeout(expire, Math.max(0, Math.min(left, MAX_TIMER_MS)));
  byId("portal-title").textContent = `Integrations · ${workspace.name}`;
  byId("portal-main").hidden = false;
  mounted = mountWorkspace({
    client,
    workspace: workspace.slug,
    roots: { integrations: byId("integrations-root"), connect: byId("connect-root"), deliveries: byId("deliveries-root") },
    onError: showError,
    onLiveState: setLiveState,
    onExpired: expire,
    onRender: rendered,
    announce,
  });
  rendered();
}

start();
