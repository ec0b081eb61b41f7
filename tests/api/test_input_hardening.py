"""Input hardening: custom header values that could never be sent, chat webhook URLs kept encrypted
(and the migration that moves existing ones), and plans that only an instance operator sets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid

import orjson
import pytest
from tortoise import connections

from app.config import Settings
from app.core.http import mask_url
from app.core.secret_box import SecretBox
from app.integrations.base import validate_headers
from app.integrations.webhook import BLOCKED_HEADERS
from app.models import Integration, Plan, Workspace
from app.services.bootstrap import bootstrap
from app.services.tokens import ABILITIES, OPERATOR_ABILITY, authenticate
from app.services.workspaces import default_plan
from tests.conftest import GraphQLClient, make_account
from tests.secrets import TEST_SECRET_KEY, stored_secrets

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id config secretsSet } errors { field message code } } }"""
UPDATE = """mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { id config secretsSet } errors { field message code } } }"""
PROBE = """mutation($id: ID!) { integrationTest(input: {id: $id, event: "post.created"}) {
  result { success responseCode errorMessage } delivery { id request attempts { requestUrl } } } }"""
READ = "query($id: ID!) { integration(id: $id) { config secretsSet } }"

TOKEN = "Zx81kQm2Lp0vB7nR4tYw6cDe"


def _hook(slug: str, url: str = "http://127.0.0.1:9/hook", **extra) -> dict:
    return {"input": {"workspace": slug, "type": "WEBHOOK", "name": "hook", "config": {"url": url}, **extra}}


async def _connect(account, variables: dict) -> dict:
    return (await account.gql(CONNECT, variables))["integrationConnect"]


def _json(value):
    """A JSON column as the driver returns it: text (SQLite, asyncpg's jsonb) or already decoded."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def _raw_row(integration_id: str) -> dict:
    """The integration's row as the database holds it, every column, no ORM decoding."""
    rows = await connections.get("default").execute_query_dict("SELECT * FROM integration")
    [row] = [r for r in rows if r["id"] == integration_id]
    return row


# ---------------------------------------------------------------- 5. custom header values


@pytest.mark.parametrize("value", [
    "a\x7fb", "a\x1fb", "a\x0bb", "a\x08b", "\x01", "a\r\nX-Evil: 1", "a\nb",
    " leading", "trailing ", "\tleading-tab", "trailing-tab\t",
])
async def test_header_values_that_cannot_be_sent_are_refused(account, value):
    made = await _connect(account, _hook(account.slug, secrets={"headers": {"X-Bad": value}}))
    assert made["integration"] is None
    [error] = made["errors"]
    assert error["field"] == "secrets.headers.X-Bad" and error["code"] == "INVALID_HEADER"
    assert "X-Bad" in error["message"]
    assert await Integration.filter(workspace__slug=account.slug).count() == 0


async def test_a_nul_in_a_header_value_is_refused(account):
    # The API refuses U+0000 in any input up front (BAD_USER_INPUT); the header check would answer
    # INVALID_HEADER. Either way nothing is stored.
    body = await account.gql.raw(CONNECT, _hook(account.slug, secrets={"headers": {"X-Bad": "a\x00b"}}))
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    else:
        [error] = body["data"]["integrationConnect"]["errors"]
        assert (error["field"], error["code"]) == ("secrets.headers.X-Bad", "INVALID_HEADER")
    assert await Integration.filter(workspace__slug=account.slug).count() == 0


def test_the_header_check_itself_refuses_every_control_character():
    for code in [*range(0x20), 0x7F]:
        value = f"a{chr(code)}b"
        clean, errors = validate_headers({"X-C": value}, "secrets.headers", BLOCKED_HEADERS)
        if code == 0x09:  # HTAB is allowed inside a value
            assert clean == {"X-C": value} and errors == []
            continue
        assert clean == {} and [(e.field, e.code) for e in errors] == [("secrets.headers.X-C", "INVALID_HEADER")]
        assert f"U+{code:04X}" in errors[0].message and "X-C" in errors[0].message
    clean, errors = validate_headers({"X-Obs": "\x80\xff é €"}, "secrets.headers", BLOCKED_HEADERS)
    assert errors == [] and clean == {"X-Obs": "\x80\xff é €"}


async def test_header_values_are_checked_on_update_too(account):
    made = await _connect(account, _hook(account.slug, secrets={"headers": {"X-Ok": "fine"}}))
    iid = made["integration"]["id"]
    bad = (await account.gql(UPDATE, {"input": {"id": iid, "secrets": {"headers": {"X-Ok": "del\x7f"}}}}))
    assert [(e["field"], e["code"]) for e in bad["integrationUpdate"]["errors"]] == [
        ("secrets.headers.X-Ok", "INVALID_HEADER")]
    assert stored_secrets((await Integration.get(id=iid)).secrets_encrypted)["headers"] == {"X-Ok": "fine"}


async def test_header_names_must_be_tokens_and_given_once(account):
    made = await _connect(account, _hook(account.slug, secrets={"headers": {"X Bad": "1", "X-Ünï": "2"}}))
    assert {(e["field"], e["code"]) for e in made["errors"]} == {
        ("secrets.headers.X Bad", "INVALID_HEADER"), ("secrets.headers.X-Ünï", "INVALID_HEADER")}
    made = await _connect(account, _hook(account.slug, secrets={"headers": {"X-Twice": "1", "x-twice": "2"}}))
    assert [(e["field"], e["code"]) for e in made["errors"]] == [("secrets.headers.x-twice", "INVALID_HEADER")]


async def test_at_most_twenty_custom_headers(account):
    twenty = {f"X-H{i}": str(i) for i in range(20)}
    made = await _connect(account, _hook(account.slug, secrets={"headers": twenty}))
    assert made["errors"] == [] and len(made["integration"]["config"]["header_names"]) == 20

    for count in (21, 10_000):
        many = {f"X-H{i}": str(i) for i in range(count)}
        made = await _connect(account, _hook(account.slug, secrets={"headers": many}))
        assert made["integration"] is None
        [error] = made["errors"]  # one error, not one per header
        assert error["field"] == "secrets.headers" and error["code"] == "TOO_LONG"
        assert "20" in error["message"]


async def test_total_size_of_custom_headers_is_bounded(account):
    big = {f"X-Big{i}": "v" * 3000 for i in range(3)}  # each value fits, together they are over 8 KiB
    made = await _connect(account, _hook(account.slug, secrets={"headers": big}))
    assert made["integration"] is None
    assert [(e["field"], e["code"]) for e in made["errors"]] == [("secrets.headers", "TOO_LONG")]
    two = {f"X-Big{i}": "v" * 3000 for i in range(2)}
    assert (await _connect(account, _hook(account.slug, secrets={"headers": two})))["errors"] == []


async def test_obs_text_and_inner_whitespace_are_allowed_and_sent(account, receiver):
    url = receiver.script("/obs-text", (200, {}, b"ok"))
    headers = {"X-Name": "Zoë Müller – café €", "X-Spaced": "a b\tc", "X-Empty": "", "X-Visible": "!~\"(),/:;<=>?@[]{}"}
    made = await _connect(account, _hook(account.slug, url, secrets={"headers": headers}))
    assert made["errors"] == []
    result = (await account.gql(PROBE, {"id": made["integration"]["id"]}))["integrationTest"]
    assert result["result"]["success"], result
    [got] = receiver.at("/obs-text")
    for name, value in headers.items():
        assert got.headers[name] == value


# ---------------------------------------------------------------- 6. chat webhook URLs encrypted


@pytest.mark.parametrize("type_name, path", [("SLACK", "/services/T0009/B0009/"), ("DISCORD", "/api/webhooks/77/")])
async def test_chat_webhook_url_is_stored_encrypted_and_still_used(account, receiver, type_name, path):
    url = receiver.script(path + TOKEN, (200, {}, b"ok"))
    made = await _connect(account, {"input": {"workspace": account.slug, "type": type_name, "name": "chat",
                                              "config": {"url": url}}})
    assert made["errors"] == []
    iid, shown = made["integration"]["id"], made["integration"]["config"]["url"]
    assert shown == mask_url(url) and TOKEN not in shown
    assert made["integration"]["secretsSet"] == ["url"]

    row = await _raw_row(iid)
    assert TOKEN not in orjson.dumps(row, default=str).decode()  # nowhere in the row in plain text
    assert _json(row["config"]) == {"url": shown}
    assert stored_secrets(row["secrets_encrypted"]) == {"url": url}

    result = (await account.gql(PROBE, {"id": iid}))["integrationTest"]
    assert result["result"]["success"], result
    assert len(receiver.at(path + TOKEN)) == 1  # the real URL was used
    assert result["delivery"]["request"]["url"] == shown
    assert [a["requestUrl"] for a in result["delivery"]["attempts"]] == [shown]

    # The masked URL sent back keeps the real one; a masked URL of something else is refused.
    kept = (await account.gql(UPDATE, {"input": {"id": iid, "name": "renamed", "config": {"url": shown}}}))
    assert kept["integrationUpdate"]["errors"] == []
    assert stored_secrets((await Integration.get(id=iid)).secrets_encrypted) == {"url": url}
    foreign = mask_url(receiver.url(path + "x" * 24))
    refused = (await account.gql(UPDATE, {"input": {"id": iid, "config": {"url": foreign}}}))["integrationUpdate"]
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("config.url", "INVALID_URL")]
    assert stored_secrets((await Integration.get(id=iid)).secrets_encrypted) == {"url": url}

    # Unknown secrets are still refused for chat types.
    extra = (await account.gql(UPDATE, {"input": {"id": iid, "secrets": {"token": "x"}}}))["integrationUpdate"]
    assert [(e["field"], e["code"]) for e in extra["errors"]] == [("secrets.token", "UNKNOWN_FIELD")]


# ---------------------------------------------------------------- 6. the migration of existing rows


def _migration():
    import importlib

    return importlib.import_module("app.models.migrations.0002_chat_webhook_urls_in_secrets")


async def test_migration_moves_a_plain_url_into_the_secrets(account, receiver):
    migration = _migration()
    box = SecretBox(TEST_SECRET_KEY)
    url = receiver.script("/services/T1/B1/" + TOKEN, (200, {}, b"ok"))
    workspace = await Workspace.get(slug=account.slug)
    # A row as the server wrote it before: the URL in the config, no secrets.
    legacy = await Integration.create(workspace=workspace, type="SLACK", name="legacy", config={"url": url},
                                      secrets_encrypted=box.seal({}), events=["*"])
    assert TOKEN in orjson.dumps(await _raw_row(legacy.id), default=str).decode()
    read = (await account.gql(READ, {"id": legacy.id}))["integration"]
    assert read["config"]["url"] == mask_url(url)  # masked even before the migration

    db = connections.get("default")
    assert await migration.move_chat_urls(Integration, db, box) >= 1
    row = await _raw_row(legacy.id)
    assert TOKEN not in orjson.dumps(row, default=str).decode()
    assert _json(row["config"]) == {"url": mask_url(url)}
    assert box.open(row["secrets_encrypted"]) == {"url": url}
    assert (await account.gql(READ, {"id": legacy.id}))["integration"] == {"config": {"url": mask_url(url)},
                                                                           "secretsSet": ["url"]}
    assert await migration.move_chat_urls(Integration, db, box) == 0  # nothing left to move

    result = (await account.gql(PROBE, {"id": legacy.id}))["integrationTest"]
    assert result["result"]["success"], result
    assert len(receiver.at("/services/T1/B1/" + TOKEN)) == 1


async def test_migration_reverse_puts_the_url_back(account, receiver):
    migration = _migration()
    box = SecretBox(TEST_SECRET_KEY)
    url = receiver.script("/api/webhooks/5/" + TOKEN, (204, {}, b""))
    made = await _connect(account, {"input": {"workspace": account.slug, "type": "DISCORD", "name": "chat",
                                              "config": {"url": url}}})
    iid = made["integration"]["id"]
    db = connections.get("default")
    try:
        assert await migration.restore_chat_urls(Integration, db, box) >= 1
        restored = await Integration.get(id=iid)
        assert restored.config == {"url": url} and box.open(restored.secrets_encrypted) == {}
    finally:
        await migration.move_chat_urls(Integration, db, box)  # leave the shared database migrated
    moved = await Integration.get(id=iid)
    assert moved.config == {"url": mask_url(url)} and box.open(moved.secrets_encrypted) == {"url": url}


# Run in a fresh process against a fresh database: the schema at 0001 with rows as the server wrote them
# then (chat URLs in plain text), then `hookyard migrate` (the CLI's entry point), then the rows read back.
LEGACY_THEN_MIGRATE = """
import asyncio, sys, orjson
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from app.cli import main as hookyard
from app.config import Settings
from app.core.secret_box import SecretBox
from app.models.database import tortoise_config

async def prepare():
    settings = Settings()
    await migrate(config=tortoise_config(settings), target="models.0001_initial")
    await Tortoise.close_connections()
    await Tortoise.init(config=tortoise_config(settings))
    from app.models import Integration, Workspace
    workspace = await Workspace.create(slug="legacy", name="Legacy")
    box = SecretBox.from_settings(settings)
    for kind, url in (("SLACK", sys.argv[1]), ("DISCORD", sys.argv[2])):
        await Integration.create(workspace=workspace, type=kind, name=kind, config={"url": url},
                                 secrets_encrypted=box.seal({}), events=["*"])
    await Integration.create(workspace=workspace, type="WEBHOOK", name="hook", config={"url": sys.argv[3]},
                             secrets_encrypted=box.seal({"signing_secret": "whsec_x"}), events=["*"])
    await Tortoise.close_connections()

async def read_back():
    await Tortoise.init(config=tortoise_config(Settings()))
    db = connections.get("default")
    rows = await db.execute_query_dict("SELECT type, config, secrets_encrypted FROM integration")
    names = await db.execute_query_dict("SELECT name FROM tortoise_migrations")
    print(orjson.dumps({"rows": rows, "migrations": [n["name"] for n in names]}, default=str).decode())
    await Tortoise.close_connections()

asyncio.run(prepare())
hookyard(["migrate"])
asyncio.run(read_back())
"""


@contextlib.asynccontextmanager
async def _fresh_database(tmp_path):
    base = os.environ.get("HOOKYARD_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite://{tmp_path / 'legacy.db'}"
        return
    import asyncpg

    name = f"hookyard_mig_{uuid.uuid4().hex[:10]}"
    admin_url = base.replace("postgres://", "postgresql://", 1)
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _run(args: list[str], env: dict) -> str:
    process = await asyncio.create_subprocess_exec(*args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


async def test_hookyard_migrate_encrypts_urls_of_an_existing_database(tmp_path):
    """The real path: a database at 0001 with plain chat URLs, then `hookyard migrate` with the server's key."""
    key = "the-servers-own-key"
    slack = "https://hooks.slack.com/services/T0/B0/" + TOKEN
    discord = "https://discord.com/api/webhooks/1/" + TOKEN
    hook = "https://example.com/hooks/" + TOKEN
    async with _fresh_database(tmp_path) as database_url:
        env = {**os.environ, "HOOKYARD_DATABASE_URL": database_url, "HOOKYARD_SECRET_KEY": key,
               "HOOKYARD_DATA_DIR": str(tmp_path / "data"), "HOOKYARD_LOG_LEVEL": "warning"}
        out = await _run([sys.executable, "-c", LEGACY_THEN_MIGRATE, slack, discord, hook], env)
        found = orjson.loads(out.strip().splitlines()[-1])
    assert "0002_chat_webhook_urls_in_secrets" in found["migrations"]
    box = SecretBox(key)
    by_type = {row["type"]: row for row in found["rows"]}
    for type_name, url in (("SLACK", slack), ("DISCORD", discord)):
        row = by_type[type_name]
        assert _json(row["config"]) == {"url": mask_url(url)} and TOKEN not in str(row)
        assert box.open(row["secrets_encrypted"]) == {"url": url}
    webhook = by_type["WEBHOOK"]  # a generic webhook's URL is no credential: left as it was
    assert _json(webhook["config"]) == {"url": hook}


# ---------------------------------------------------------------- 7. plans are the operator's


CREATE = """mutation($slug: String!, $plan: Plan) { workspaceCreate(input: {slug: $slug, name: "New", plan: $plan}) {
  workspace { slug plan viewerRole } errors { field code } } }"""
PLAN_SET = """mutation($ws: String!, $plan: Plan!) { workspacePlanSet(input: {workspace: $ws, plan: $plan}) {
  workspace { slug plan } errors { field code } } }"""
TOKEN_CREATE = """mutation($abilities: [String!]) { apiTokenCreate(input: {name: "t", abilities: $abilities}) {
  token apiToken { abilities } errors { field code } } }"""


async def test_ordinary_tokens_cannot_choose_or_change_a_plan(account):
    slug = account.slug + "-paid"
    assert await account.gql.error_code(CREATE, {"slug": slug, "plan": "PROFESSIONAL"}) == "FORBIDDEN"
    assert await account.gql.error_code(CREATE, {"slug": slug, "plan": "FREE"}) == "FORBIDDEN"
    assert not await Workspace.exists(slug=slug)
    assert await account.gql.error_code(PLAN_SET, {"ws": account.slug, "plan": "STARTER"}) == "FORBIDDEN"
    assert (await Workspace.get(slug=account.slug)).plan == Plan.PROFESSIONAL

    made = (await account.gql(CREATE, {"slug": slug, "plan": None}))["workspaceCreate"]
    assert made == {"workspace": {"slug": slug, "plan": "FREE", "viewerRole": "OWNER"}, "errors": []}


async def test_ordinary_tokens_cannot_grant_the_operator_ability(account):
    data = (await account.gql(TOKEN_CREATE, {"abilities": [OPERATOR_ABILITY]}))["apiTokenCreate"]
    assert data == {"token": None, "apiToken": None, "errors": [{"field": "abilities.0", "code": "NOT_ALLOWED"}]}
    data = (await account.gql(TOKEN_CREATE, {"abilities": None}))["apiTokenCreate"]
    assert OPERATOR_ABILITY not in data["apiToken"]["abilities"]


async def test_an_operator_chooses_and_changes_plans(http, account):
    operator = await make_account(http, abilities=[*ABILITIES, OPERATOR_ABILITY])
    slug = operator.slug + "-pro"
    made = (await operator.gql(CREATE, {"slug": slug, "plan": "PROFESSIONAL"}))["workspaceCreate"]
    assert made["errors"] == [] and made["workspace"]["plan"] == "PROFESSIONAL"

    # Any workspace on the instance, member or not.
    changed = (await operator.gql(PLAN_SET, {"ws": account.slug, "plan": "STARTER"}))["workspacePlanSet"]
    assert changed == {"workspace": {"slug": account.slug, "plan": "STARTER"}, "errors": []}
    assert (await Workspace.get(slug=account.slug)).plan == Plan.STARTER
    assert await operator.gql.error_code(PLAN_SET, {"ws": "no-such-workspace", "plan": "FREE"}) == "NOT_FOUND"

    # An operator may hand the ability on; the token it makes can then set plans too.
    data = (await operator.gql(TOKEN_CREATE, {"abilities": [OPERATOR_ABILITY]}))["apiTokenCreate"]
    assert data["errors"] == [] and data["apiToken"]["abilities"] == [OPERATOR_ABILITY]
    delegate = GraphQLClient(http, data["token"])
    again = (await delegate(PLAN_SET, {"ws": account.slug, "plan": "PROFESSIONAL"}))["workspacePlanSet"]
    assert again["workspace"]["plan"] == "PROFESSIONAL"


def test_default_plan_setting(monkeypatch):
    monkeypatch.delenv("HOOKYARD_DEFAULT_PLAN", raising=False)
    assert default_plan(Settings()) == Plan.FREE
    monkeypatch.setenv("HOOKYARD_DEFAULT_PLAN", "professional")
    assert default_plan(Settings()) == Plan.PROFESSIONAL
    monkeypatch.setenv("HOOKYARD_DEFAULT_PLAN", "gold")
    with pytest.raises(ValueError):
        Settings()


async def test_bootstrap_tokens_are_operators(http):
    """The first token and each `hookyard bootstrap --new-token` can set plans; nothing else mints that."""
    slug = f"boot-{uuid.uuid4().hex[:8]}"
    first = await bootstrap(email=f"{slug}@example.com", slug=slug)
    again = await bootstrap(email=f"{slug}@example.com", slug=slug, force_token=True)  # --new-token
    assert (await Workspace.get(slug=slug)).plan == Plan.PROFESSIONAL
    for n, boot in enumerate((first, again)):
        assert OPERATOR_ABILITY in (await authenticate(f"Bearer {boot.token}")).abilities
        operator = GraphQLClient(http, boot.token)
        chosen = (await operator(CREATE, {"slug": f"{slug}-{n}", "plan": "STARTER"}))["workspaceCreate"]
        assert chosen == {"workspace": {"slug": f"{slug}-{n}", "plan": "STARTER", "viewerRole": "OWNER"},
                          "errors": []}
    assert (await bootstrap(email=f"{slug}@example.com", slug=slug)).token is None  # set up: no new token


async def test_new_workspaces_get_the_configured_default_plan(server, account, monkeypatch):
    """HOOKYARD_DEFAULT_PLAN, as the running server's settings hold it."""
    monkeypatch.setattr(server.settings, "default_plan", "starter")
    made = (await account.gql(CREATE, {"slug": account.slug + "-d", "plan": None}))["workspaceCreate"]
    assert made["workspace"]["plan"] == "STARTER"
    assert (await Workspace.get(slug=account.slug + "-d")).plan == Plan.STARTER


async def test_a_payload_number_beyond_64_bits_is_a_field_error(account):
    query = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
      event { id } errors { field code } } }"""
    data = await account.gql(query, {"input": {"workspace": account.slug, "type": "order.created",
                                               "payload": {"amount": 2**70}}})
    assert data["eventPublish"] == {"event": None, "errors": [{"field": "payload", "code": "INVALID"}]}
