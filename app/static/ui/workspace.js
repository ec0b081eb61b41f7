// Everything an owner does in one workspace, wired together: integrations, connecting new ones, forms,
// and the live delivery log. The operator dashboard and the customer portal both mount this.

import { ConnectPanel } from "./connect.js";
import { DeliveryLog } from "./deliveries.js";
import { loadEventTypes } from "./events.js";
import { FormsEditor } from "./forms.js";
import { IntegrationList } from "./integrations.js";
import { watchDeliveries } from "./live.js";

const Q_FORM_NAMES = `query($slug: String!) { workspace(slug: $slug) { forms(first: 100) { edges { node { slug name } } } } }`;

/**
 * @param {object} o
 * @param {import("./graphql.js").GraphQLClient} o.client
 * @param {string} o.workspace slug
 * @param {{integrations: HTMLElement, deliveries: HTMLElement, connect?: HTMLElement}} o.roots
 * @param {(message: string) => void} o.onError
 * @param {(state: string) => void} [o.onLiveState]
 * @param {(error: object) => void} [o.onExpired] the live connection was refused (4401/4403)
 * @param {() => void} [o.onRender]
 * @param {(message: string) => void} [o.announce]
 * @returns {{close: () => void, integrations: IntegrationList, deliveries: DeliveryLog, connect: ConnectPanel|null}}
 */
export function mountWorkspace({ client, workspace, roots, onError, onLiveState = () => {}, onExpired = null,
  onRender = () => {}, announce = () => {} }) {
  let eventTypes = [];
  let closed = false;
  const common = { client, workspace, onError, announce, onRender };

  const deliveries = new DeliveryLog({ ...common, root: roots.deliveries });
  const refreshEventTypes = async () => {
    eventTypes = await loadEventTypes(client, workspace);
    deliveries.setEventTypes(eventTypes.map((t) => t.name));
  };
  const refreshForms = async () => {
    try {
      const data = await client.request(Q_FORM_NAMES, { slug: workspace });
      deliveries.setForms(data.workspace.forms.edges.map((e) => e.node));
    } catch {
      // the filter simply offers no forms
    }
  };

  let connect = null;
  const integrations = new IntegrationList({
    ...common,
    root: roots.integrations,
    onChanged: (list) => deliveries.setIntegrations(list),
    onDelivery: (delivery) => deliveries.upsert(delivery, { fromList: true }),
    formsPanel: (integration, container) => new FormsEditor({
      ...common, integration, root: container, onChanged: () => integrations.refreshSoon(),
    }).load(),
    onReconnect: (integration) => connect && connect.reconnect(integration),
    onSetup: (integration) => connect && connect.chooseSpreadsheet(integration),
    eventTypes: () => eventTypes,
  });
  if (roots.connect) {
    connect = new ConnectPanel({
      ...common,
      root: roots.connect,
      eventTypes: () => eventTypes,
      onConnected: () => {
        integrations.load();
        refreshEventTypes();
      },
    });
  }

  // Subscribe first, then read; every resubscription reads again what the drop may have hidden.
  const live = watchDeliveries({
    client,
    workspace,
    onState: onLiveState,
    onUpdate: (update) => {
      if (!closed) deliveries.upsert(update.delivery);
    },
    onSettled: () => integrations.refreshSoon(),
    onCatchUp: () => {
      if (closed) return;
      integrations.load();
      deliveries.refresh();
    },
    onError: (error) => onError(`Live updates: ${error.message}`),
    onExpired,
  });
  integrations.load();
  deliveries.applyFilters({});
  refreshEventTypes();
  refreshForms();
  if (connect) connect.load();

  return {
    integrations,
    deliveries,
    connect,
    close() {
      closed = true;
      live.close();
    },
  };
}
