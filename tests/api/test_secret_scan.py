"""No secret we hand the server ever comes back out, in an answer or in a stored row.

One scenario does what owners do with credentials: connects a webhook with its own signing secret
and custom secret headers, a webhook with a generated secret, Slack and Discord webhooks whose URLs
end in their token (on the loopback receiver), and HubSpot over OAuth (the fake provider); sends
events, runs integrationTest, fails (the receiver answers 500, a chat URL whose port refuses),
rotates (signing secret with a grace period, new header values, a new chat URL, a refreshed OAuth
token), mints and revokes an API token, watches it all on a live subscription, and reads back
everything that shows integrations, deliveries, attempts, events, tokens and nodes.

Then every GraphQL answer (HTTP and WebSocket) and every column of every row of every table (raw SQL)
is searched for each secret: signing secrets, header values, `hyk_` API tokens, chat URL tokens, OAuth
access and refresh tokens and client secrets. None may appear, except the secret an answer shows once
by design (integrationConnect's and integrationRotateSecret's `secret`, apiTokenCreate's `token`),
and then only in that field. `secrets_encrypted` must hold ciphertext; it is searched like the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from tortoise import connections

from app.models import Integration
from tests.e2e.live_client import subscribe_raw
from tests.secrets import stored_secrets
from tests.worker.helpers import settled

INTEGRATION = ("id type name config events scope enabled status secretsSet createdAt updatedAt lastSuccessAt "
               "forms { id }")
ATTEMPT = "id number trigger requestUrl responseCode responseHeaders responseBody durationMs errorMessage createdAt"
DELIVERY = (f"id status eventType isTest attemptCount nextAttemptAt responseCode durationMs errorMessage request "
            f"response createdAt updatedAt deliveredAt event {{ id type payload idempotencyKey }} "
            f"integration {{ id name config secretsSet }} attempts {{ {ATTEMPT} }}")
CONNECT = f"""mutation($input: IntegrationConnectInput!) {{ integrationConnect(input: $input) {{
  integration {{ {INTEGRATION} }} secret errors {{ field code message }} }} }}"""
UPDATE = f"""mutation($input: IntegrationUpdateInput!) {{ integrationUpdate(input: $input) {{
  integration {{ {INTEGRATION} }} errors {{ field code message }} }} }}"""
PUBLISH = f"""mutation($ws: String!, $type: String!) {{ eventPublish(input: {{workspace: $ws, type: $type,
  payload: {{title: "hello", n: 1}}}}) {{ event {{ id type payload }} deliveries {{ {DELIVERY} }}
  errors {{ code }} }} }}"""
TEST = f"""mutation($id: ID!) {{ integrationTest(input: {{id: $id}}) {{
  result {{ success responseCode durationMs errorMessage }} delivery {{ {DELIVERY} }} errors {{ code }} }} }}"""
ROTATE = """mutation($id: ID!) { integrationRotateSecret(input: {id: $id, gracePeriodSeconds: 3600}) {
  secret errors { code } } }"""
LIVE = f"subscription($ws: String!) {{ deliveryUpdates(workspace: $ws) {{ status at delivery {{ {DELIVERY} }} " \
       f"attempt {{ {ATTEMPT} }} }} }}"
NODE_SELECTIONS = {  # node(id) asks for everything its type has; one type per query (their fields clash)
    "int": f"... on Integration {{ {INTEGRATION} }}",
    "del": f"... on Delivery {{ {DELIVERY} }}",
    "evt": "... on Event { id type payload idempotencyKey }",
    "att": f"... on DeliveryAttempt {{ {ATTEMPT} }}",
    "tok": "... on ApiToken { id name hint abilities }",
    "fin": f"... on FormIntegration {{ id integration {{ {INTEGRATION} }} }}",
}
READ_ALL = f"""query($ws: String!) {{
  viewer {{ user {{ id email }} token {{ id name hint abilities }} tokens {{ id name hint }} workspaces {{ slug }} }}
  workspace(slug: $ws) {{
    integrations(first: 100) {{ edges {{ node {{ {INTEGRATION}
      deliveries(first: 100) {{ edges {{ node {{ {DELIVERY} }} }} }} }} }} }}
    deliveries(first: 100) {{ edges {{ node {{ {DELIVERY} }} }} }}
    forms {{ edges {{ node {{ id slug integrations {{ id integration {{ {INTEGRATION} }} }} }} }} }}
  }}
  eventTypes(workspace: $ws) {{ name }}
  integrationTypes {{ type configFields {{ name secret }} }}
}}"""
TOKEN_RE = re.compile(r"hyk_[A-Za-z0-9_-]{43}")


class Answers:
    """Every GraphQL answer the scenario got, with the once-shown secrets taken out of their own field."""

    def __init__(self, http: httpx.AsyncClient, token: str):
        self.http, self.token = http, token
        self.texts: list[tuple[str, str]] = []  # (what, raw text)

    async def __call__(self, query: str, variables: dict | None = None, *, shown_once: tuple[str, ...] = (),
                       token: str | None = None) -> dict:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers={"Authorization": f"Bearer {token or self.token}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        self.keep(query, body, shown_once)
        return body["data"]

    def keep(self, what: str, body: dict, shown_once: tuple[str, ...] = ()) -> None:
        """`shown_once` paths ("integrationConnect.secret") are checked to exist, then blanked for the scan."""
        scanned = orjson.loads(orjson.dumps(body))
        for path in shown_once:
            *parents, last = path.split(".")
            holder = scanned["data"]
            for key in parents:
                holder = holder[key]
            assert holder[last], f"{path} should show its secret once"
            holder[last] = None
        self.texts.append((what.split("(")[0].strip()[:60], orjson.dumps(scanned).decode()))


async def all_rows() -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every column of every row of every table, by raw SQL."""
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        tables = [r["tablename"] for r in await conn.execute_query_dict(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    else:
        tables = [r["name"] for r in await conn.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    assert {"integration", "delivery", "delivery_attempt", "event", "api_token"} <= set(tables), tables
    out = []
    for table in tables:
        for row in await conn.execute_query_dict(f'SELECT * FROM "{table}"'):
            for column, value in row.items():
                if value is None:
                    continue
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else (
                    value if isinstance(value, str) else orjson.dumps(value, default=str).decode())
                out.append((table, column, text))
    return out


async def read_live(ws, into: list[tuple[str, str]]) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            into.append(("deliveryUpdates (live)", message if isinstance(message, str) else message.decode()))


async def oauth_connect(answers: Answers, slug: str) -> str:
    data = await answers("""mutation($ws: String!) { integrationOAuthConnectUrl(input: {workspace: $ws,
        type: HUBSPOT, redirectTo: "https://app.example.com/done", name: "CRM"}) { url errors { code } } }""",
                         {"ws": slug})
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        consent = await browser.get(data["integrationOAuthConnectUrl"]["url"])
        back = await browser.get(consent.headers["location"])
    landed = parse_qs(urlsplit(back.headers["location"]).query)
    assert landed["status"] == ["connected"], landed
    return landed["integrationId"][0]


async def test_no_secret_appears_in_any_answer_or_stored_row(server, account, receiver, providers):
    gql = Answers(account.gql.http, account.token)
    slug = account.slug
    own_secret = "own-signing-" + secrets.token_urlsafe(24)
    header_values = ["hdr-" + secrets.token_urlsafe(24), "hdr-" + secrets.token_urlsafe(24)]
    new_header_value = "hdr-new-" + secrets.token_urlsafe(24)
    chat_tokens = {name: secrets.token_urlsafe(32) for name in ("slack", "discord", "slack-new", "slack-dead")}
    shown: list[str] = []  # secrets the API generated and showed once

    live_texts: list[tuple[str, str]] = []
    live = await subscribe_raw(server.url, account.token, LIVE, {"ws": slug})
    reader = asyncio.create_task(read_live(live, live_texts))

    # Connect: a webhook with its own secret and secret headers, one with a generated secret, Slack, Discord.
    hook_url = receiver.script("/hooks/own", (200, {}, b"ok"))
    made = await gql(CONNECT, {"input": {"workspace": slug, "type": "WEBHOOK", "name": "own", "config": {
        "url": hook_url}, "secrets": {"secret": own_secret, "headers": {"X-Api-Key": header_values[0],
                                                                         "X-Tenant-Token": header_values[1]}}}})
    own_id = made["integrationConnect"]["integration"]["id"]
    made = await gql(CONNECT, {"input": {"workspace": slug, "type": "WEBHOOK", "name": "generated",
                                         "config": {"url": receiver.script("/hooks/generated", (200, {}, b"ok"))}}},
                     shown_once=("integrationConnect.secret",))
    generated_id = made["integrationConnect"]["integration"]["id"]
    shown.append(stored_secrets((await Integration.get(id=generated_id)).secrets_encrypted)["signing_secret"])
    chat = {}
    for name, type_name, path in (("slack", "SLACK", "/services/T000/B000/"), ("discord", "DISCORD",
                                                                                "/api/webhooks/123456/")):
        url = receiver.script(path + chat_tokens[name], (200, {}, b"ok"))
        made = await gql(CONNECT, {"input": {"workspace": slug, "type": type_name, "name": name,
                                             "config": {"url": url}}})
        assert made["integrationConnect"]["errors"] == [], made
        chat[name] = made["integrationConnect"]["integration"]["id"]
    dead = await gql(CONNECT, {"input": {"workspace": slug, "type": "SLACK", "name": "dead", "config": {
        "url": f"http://127.0.0.1:9/services/T000/B001/{chat_tokens['slack-dead']}"}}})
    dead_id = dead["integrationConnect"]["integration"]["id"]
    hubspot_id = await oauth_connect(gql, slug)

    # Send: events to everyone, then a test of each integration.
    published = await gql(PUBLISH, {"ws": slug, "type": "session.completed"})
    for delivery in published["eventPublish"]["deliveries"]:
        await settled(delivery["id"], statuses=("SUCCEEDED", "FAILED", "HELD", "RETRYING"))
    for integration_id in (own_id, generated_id, chat["slack"], chat["discord"], dead_id, hubspot_id):
        await gql(TEST, {"id": integration_id})

    # Fail: the receiver answers 500 (webhook and Slack); the dead Slack URL's port refuses.
    receiver.script("/hooks/own", (500, {}, b"receiver failed"))
    receiver.script("/services/T000/B000/" + chat_tokens["slack"], (500, {}, b"no_service"))
    failing = await gql(PUBLISH, {"ws": slug, "type": "form.failed"})
    ids = [d["id"] for d in failing["eventPublish"]["deliveries"]]
    for delivery_id in ids:
        await settled(delivery_id)
    await gql(TEST, {"id": own_id})
    await gql(TEST, {"id": chat["slack"]})

    # Rotate: the signing secret (the old one keeps signing for an hour), header values, the Slack URL,
    # the HubSpot access token (expired at the provider: the next call refreshes it).
    rotated = await gql(ROTATE, {"id": own_id}, shown_once=("integrationRotateSecret.secret",))
    assert rotated["integrationRotateSecret"]["errors"] == []
    shown.append(stored_secrets((await Integration.get(id=own_id)).secrets_encrypted)["signing_secret"])
    await gql(UPDATE, {"input": {"id": own_id, "secrets": {"headers": {"X-Api-Key": new_header_value}}}})
    new_slack = receiver.script("/services/T000/B000/" + chat_tokens["slack-new"], (200, {}, b"ok"))
    updated = await gql(UPDATE, {"input": {"id": chat["slack"], "config": {"url": new_slack}}})
    assert updated["integrationUpdate"]["errors"] == [], updated
    providers.expire(stored_secrets((await Integration.get(id=hubspot_id)).secrets_encrypted)["access_token"])
    receiver.script("/hooks/own", (200, {}, b"ok"))
    after = await gql(PUBLISH, {"ws": slug, "type": "session.completed"})
    for delivery in after["eventPublish"]["deliveries"]:
        await settled(delivery["id"], statuses=("SUCCEEDED", "FAILED", "HELD", "RETRYING"))
    retried = await gql("mutation($id: ID!) { deliveryRetry(input: {id: $id}) { queued errors { code } } }",
                        {"id": ids[0]})
    assert retried["deliveryRetry"]["errors"] == []

    # API tokens: mint one (shown once), use it, revoke it.
    minted = await gql('mutation { apiTokenCreate(input: {name: "scan"}) { token apiToken { id hint } '
                       "errors { code } } }", shown_once=("apiTokenCreate.token",))
    api_tokens = [account.token, minted["apiTokenCreate"]["token"]]
    await gql("{ viewer { token { id hint } } }", token=api_tokens[1])
    await gql("mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { revokedId errors { code } } }",
              {"id": minted["apiTokenCreate"]["apiToken"]["id"]})

    # Read back everything that shows integrations, deliveries, attempts, events, tokens, nodes.
    everything = await gql(READ_ALL, {"ws": slug})
    deliveries = [e["node"] for e in everything["workspace"]["deliveries"]["edges"]]
    node_ids = [e["node"]["id"] for e in everything["workspace"]["integrations"]["edges"]]
    node_ids += [t["id"] for t in everything["viewer"]["tokens"]]
    for delivery in deliveries:
        await gql(f"query($id: ID!) {{ delivery(id: $id) {{ {DELIVERY} }} }}", {"id": delivery["id"]})
        node_ids += [delivery["id"], delivery["event"]["id"], *[a["id"] for a in delivery["attempts"]]]
    for integration_id in (own_id, generated_id, *chat.values(), dead_id, hubspot_id):
        await gql(f"query($id: ID!) {{ integration(id: $id) {{ {INTEGRATION} }} }}", {"id": integration_id})
    for node_id in dict.fromkeys(node_ids):
        await gql(f"query($id: ID!) {{ node(id: $id) {{ id {NODE_SELECTIONS[node_id.split('_')[0]]} }} }}",
                  {"id": node_id})
    await asyncio.sleep(0.5)  # the last live updates
    await live.close()
    await reader

    # What the scenario did reached the receivers: the secrets were really in use.
    own_calls = receiver.at("/hooks/own")
    assert own_calls and own_calls[0].headers["X-Api-Key"] == header_values[0]
    assert own_calls[-1].headers["X-Api-Key"] == new_header_value
    assert len(own_calls[-1].headers["webhook-signature"].split()) == 2  # new and previous secret
    assert receiver.at("/services/T000/B000/" + chat_tokens["slack"])
    assert receiver.at("/services/T000/B000/" + chat_tokens["slack-new"])
    assert receiver.at("/api/webhooks/123456/" + chat_tokens["discord"])
    stored = stored_secrets((await Integration.get(id=own_id)).secrets_encrypted)
    assert stored["previous_signing_secret"] == own_secret and stored["headers"]["X-Api-Key"] == new_header_value
    oauth = stored_secrets((await Integration.get(id=hubspot_id)).secrets_encrypted)
    assert oauth["access_token"] in providers.access_tokens and oauth["refresh_token"] in providers.refresh_tokens
    assert any(u["status"] == "FAILED" for u in deliveries) and any(u["status"] == "SUCCEEDED" for u in deliveries)
    assert len(live_texts) > 5, "the subscription saw the deliveries"

    hunted = {
        "own signing secret": own_secret,
        **{f"generated or rotated signing secret {i}": s for i, s in enumerate(shown)},
        **{f"header value {i}": v for i, v in enumerate([*header_values, new_header_value])},
        **{f"{name} webhook URL token": token for name, token in chat_tokens.items()},
        **{f"API token {i}": token for i, token in enumerate(api_tokens)},
        **{f"OAuth access token {t[:12]}": t for t in providers.access_tokens},
        **{f"OAuth refresh token {t[:12]}": t for t in providers.refresh_tokens},
        **{f"{p} client secret": getattr(server.settings, f"{p}_client_secret") for p in ("hubspot", "pipedrive",
                                                                                          "google")},
    }
    assert all(len(v) >= 8 for v in hunted.values()), hunted

    answers = gql.texts + live_texts
    leaks = [f"answer {what!r} holds the {name}" for what, text in answers for name, value in hunted.items()
             if value in text]
    leaks += [f"answer {what!r} holds an API token" for what, text in answers if TOKEN_RE.search(text)]
    rows = await all_rows()
    # The chat webhook URLs live in the encrypted secrets, config.url only in masked form, so the URL
    # tokens are searched in `config` like every other secret.
    leaks += [f"{table}.{column} holds the {name}" for table, column, text in rows for name, value in hunted.items()
              if value in text]
    leaks += [f"{table}.{column} holds an API token" for table, column, text in rows if TOKEN_RE.search(text)]
    assert not leaks, "\n".join(sorted(set(leaks)))

    # Stored where expected, as ciphertext: every integration of the scenario has sealed secrets.
    sealed = {r["id"]: r["secrets_encrypted"] for r in await connections.get("default").execute_query_dict(
        'SELECT id, secrets_encrypted FROM "integration"')}
    for integration_id in (own_id, generated_id, *chat.values(), hubspot_id):
        assert sealed[integration_id] and stored_secrets(sealed[integration_id]), integration_id
    chat_stored = stored_secrets(sealed[chat["slack"]])
    assert chat_stored.get("url", "").endswith(chat_tokens["slack-new"]), "the Slack URL is kept encrypted"
