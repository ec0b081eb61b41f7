/*
 * Hookyard portal embed: include this script on a page of your product, then
 *
 *   const portal = HookyardPortal.mount(document.getElementById("integrations"), {
 *     portalUrl: "https://hookyard.example/portal?session=pss_…#token=hyp_…",  // from portalSessionCreate
 *     title: "Integrations",                                                   // optional: the iframe's title
 *     onResize: function (height) {},                                         // optional
 *   });
 *   portal.unmount();   // later
 *
 * `portalUrl` is what your backend got from portalSessionCreate; its workspace, abilities, theme and
 * expiry are the session's. The token travels in the URL fragment, which browsers never send to a
 * server. The iframe's height follows the portal's content: it accepts "hookyard:resize" messages from
 * that iframe and its origin only.
 */
(function () {
  "use strict";

  var MIN_HEIGHT = 120;
  var MAX_HEIGHT = 20000;

  function resolveElement(element) {
    if (typeof element === "string") return document.querySelector(element);
    return element;
  }

  /** The portal's address: `portalUrl` as given, or `url` (+ `session`) with `token` in the fragment. */
  function portalAddress(options) {
    if (options.portalUrl) return new URL(options.portalUrl, window.location.href);
    var url = new URL(options.url, window.location.href);
    if (options.session) url.searchParams.set("session", options.session);
    url.hash = "token=" + encodeURIComponent(options.token);
    return url;
  }

  function mount(element, options) {
    var host = resolveElement(element);
    if (!host) throw new Error("HookyardPortal.mount: no element to mount into");
    if (!options || !(options.portalUrl || (options.url && options.token))) {
      throw new Error("HookyardPortal.mount: portalUrl (from portalSessionCreate) is required");
    }

    var url = portalAddress(options);
    var origin = url.origin;

    var iframe = document.createElement("iframe");
    iframe.src = url.toString();
    iframe.title = options.title || "Integrations";
    iframe.setAttribute("allow", "clipboard-write");
    iframe.setAttribute("referrerpolicy", "no-referrer");
    iframe.setAttribute("loading", "eager");
    iframe.style.display = "block";
    iframe.style.width = "100%";
    iframe.style.border = "0";
    iframe.style.height = (options.initialHeight || 480) + "px";

    function onMessage(event) {
      if (event.source !== iframe.contentWindow || event.origin !== origin) return;
      var data = event.data;
      if (!data || typeof data !== "object" || data.type !== "hookyard:resize") return;
      var height = Number(data.height);
      if (!isFinite(height)) return;
      height = Math.max(MIN_HEIGHT, Math.min(MAX_HEIGHT, Math.ceil(height)));
      iframe.style.height = height + "px";
      if (typeof options.onResize === "function") options.onResize(height);
    }

    window.addEventListener("message", onMessage);
    host.appendChild(iframe);

    return {
      iframe: iframe,
      unmount: function () {
        window.removeEventListener("message", onMessage);
        if (iframe.parentNode) iframe.parentNode.removeChild(iframe);
      },
    };
  }

  window.HookyardPortal = { mount: mount };
})();
