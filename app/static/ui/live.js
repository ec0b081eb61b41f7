// Live delivery status: the deliveryUpdates subscription, and reading what was missed after a drop.
//
// Subscribe first, then read: nothing that happens in between is lost. Every (re)subscription calls
// `onCatchUp`, which re-reads the log, so updates published while the socket was down (a network drop,
// a server restart, a 1013 SLOW_SUBSCRIBER close) still reach the page.

import { TransportWsClient } from "./graphql.js";
import { DELIVERY_FIELDS } from "./deliveries.js";

export const S_DELIVERY_UPDATES = `subscription($ws: String!) { deliveryUpdates(workspace: $ws) {
  status at delivery { ${DELIVERY_FIELDS} } attempt { number trigger responseCode errorMessage } } }`;

const SETTLED = new Set(["SUCCEEDED", "FAILED", "HELD"]);

/**
 * @param {object} options
 * @param {import("./graphql.js").GraphQLClient} options.client its endpoint and token are used for the socket
 * @param {string} options.workspace slug
 * @param {(update: object) => void} options.onUpdate each DeliveryUpdate ({status, at, delivery, attempt})
 * @param {() => void} options.onCatchUp after each (re)subscription: read what may have been missed
 * @param {(update: object) => void} [options.onSettled] a delivery reached SUCCEEDED, FAILED or HELD
 * @param {(state: string) => void} [options.onState] "connecting" | "live" | "offline" | "error"
 * @param {(error: object) => void} [options.onError] a subscription error
 * @param {(error: object) => void} [options.onExpired] the server refused the credentials (4401/4403)
 * @returns {{close: () => void}}
 */
export function watchDeliveries({ client, workspace, onUpdate, onCatchUp, onSettled = () => {}, onState = () => {},
  onError = () => {}, onExpired = null }) {
  const ws = new TransportWsClient({ url: client.wsUrl, connectionParams: client.connectionParams, onState });
  const refused = (error) => {
    const code = error && error.extensions && error.extensions.code;
    if (code === "UNAUTHENTICATED" && onExpired) onExpired(error);
    else onError(error || { message: "live updates stopped" });
  };
  ws.subscribe({ query: S_DELIVERY_UPDATES, variables: { ws: workspace } }, {
    next: (result) => {
      if (result.errors && result.errors.length) refused(result.errors[0]);
      const update = result.data && result.data.deliveryUpdates;
      if (!update) return;
      onUpdate(update);
      if (SETTLED.has(update.status)) onSettled(update);
    },
    error: (errors) => refused(errors && errors[0]),
    resubscribed: () => onCatchUp(),
  }, { persistent: true });
  return { close: () => ws.close() };
}
