// Where an OAuth provider's consent ends (the `redirectTo` of integrationOAuthConnectUrl): tells the page
// that opened this popup how it went, then closes. Only to a page of this same origin.

const params = new URLSearchParams(location.search);
const message = {
  type: "hookyard:oauth",
  status: params.get("status") === "connected" ? "connected" : "error",
  integrationId: params.get("integrationId") || null,
  error: params.get("error") || null,
};

let told = false;
try {
  if (window.opener && !window.opener.closed) {
    window.opener.postMessage(message, location.origin);
    told = true;
  }
} catch {
  told = false;
}
try {
  // Where a provider's Cross-Origin-Opener-Policy cut the link to the opener.
  const channel = new BroadcastChannel("hookyard:oauth");
  channel.postMessage(message);
  channel.close();
} catch {
  // not supported: the opener notices the window closing
}

document.getElementById("oauth-title").textContent = message.status === "connected" ? "Connected" : "Not connected";
document.getElementById("oauth-text").textContent = message.status === "connected"
  ? "You can close this window."
  : `The connection did not complete (${message.error || "unknown error"}). You can close this window.`;
if (told || message.status === "connected") setTimeout(() => window.close(), told ? 100 : 1500);
