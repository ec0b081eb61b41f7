"""`hookyard` as an operator uses it: each command through typer's CliRunner against a SQLite
database of its own (what it prints, what it changes in the database), and a few as real processes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import re
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.cli import common
from app.config import Settings
from app.core.secret_box import SecretBox
from app.models import (
    ApiToken,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    Integration,
    IntegrationStatus,
    Plan,
    User,
)
from app.models.database import close_db, init_db
from app.services.tokens import ABILITIES, TOKEN_RE, hash_token
from app.services.workspaces import create_workspace
from tests.secrets import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
HOOKYARD = ROOT / ".venv" / "bin" / "hookyard"
SIGNING_SECRET = "whsec_cli-test-signing-secret-do-not-print"
NOW = datetime.now(UTC)


@pytest.fixture
def database(tmp_path):
    """A SQLite file in the test's data directory; with HOOKYARD_TEST_DATABASE_URL (`make test-postgres`)
    a fresh PostgreSQL database instead, dropped afterwards."""
    base = os.environ.get("HOOKYARD_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite://{tmp_path / 'data' / 'hookyard.db'}"
        return
    import asyncpg

    name = f"hookyard_cli_{uuid.uuid4().hex[:10]}"
    admin_url = base.replace("postgres://", "postgresql://", 1)

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield base.rsplit("/", 1)[0] + "/" + name
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def env(tmp_path, monkeypatch, database) -> dict[str, str]:
    """A data directory and database of the test's own; no HOOKYARD_* setting from outside."""
    for name in list(os.environ):
        if name.startswith("HOOKYARD_") and not name.startswith("HOOKYARD_TEST_"):
            monkeypatch.delenv(name)
    values = {"HOOKYARD_DATA_DIR": str(tmp_path / "data"), "HOOKYARD_DATABASE_URL": database,
              "HOOKYARD_SECRET_KEY": TEST_SECRET_KEY, "HOOKYARD_LOG_LEVEL": "warning"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    monkeypatch.setattr(common.out, "width", 200)  # tables unwrapped, as on a wide terminal
    return values


@pytest.fixture(autouse=True)
def _logging_restored():
    """The CLI sets up logging for the process; the tests after these keep theirs."""
    root, tortoise = logging.getLogger(), logging.getLogger("tortoise")
    handlers, level, tortoise_level = list(root.handlers), root.level, tortoise.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    tortoise.setLevel(tortoise_level)


def hookyard(*args: str, code: int = 0):
    result = CliRunner().invoke(cli_app, list(args), prog_name="hookyard")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def unboxed(text: str) -> str:
    """Text as read, without the box and line breaks rich draws around usage errors."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", text)


def db(work):
    """Runs `work()` against the test's database (as the CLI sees it)."""
    async def go():
        await init_db(Settings())
        try:
            return await work()
        finally:
            await close_db()

    return asyncio.run(go())


@pytest.fixture
def migrated(env) -> dict[str, str]:
    hookyard("migrate")
    return env


async def _workspace(slug: str, email: str = "owner@example.com"):
    user, _ = await User.get_or_create(email=email, defaults={"name": "Owner"})
    return (await create_workspace(user, slug, f"Workspace {slug}", Plan.PROFESSIONAL)).value


async def _integration(workspace, name: str = "hook", key: str = TEST_SECRET_KEY, **fields) -> Integration:
    return await Integration.create(workspace=workspace, type="WEBHOOK", name=name,
                                    config={"url": "https://example.com/hooks", "verify_ssl": True},
                                    secrets_encrypted=SecretBox(key).seal({"signing_secret": SIGNING_SECRET}),
                                    events=["*"], **fields)


async def _delivery(integration: Integration, status: DeliveryStatus, age: timedelta, attempts: int = 0) -> Delivery:
    event = await Event.create(workspace_id=integration.workspace_id, type="session.completed",
                               payload={"answer": 42})
    delivery = await Delivery.create(
        workspace_id=integration.workspace_id, event=event, integration=integration, event_type=event.type,
        status=status, attempt_count=attempts, last_error="HTTP 500" if status == DeliveryStatus.FAILED else None,
        request={"method": "POST", "url": "https://example.com/hooks", "headers": {"webhook-signature": "v1,x"},
                 "body": '{"answer": 42}'})
    for number in range(1, attempts + 1):
        await DeliveryAttempt.create(delivery=delivery, number=number, trigger="scheduled", response_code=500)
    created = NOW - age
    await Delivery.filter(id=delivery.id).update(created_at=created)
    await Event.filter(id=event.id).update(created_at=created)
    delivery.created_at = created
    return delivery


# ------------------------------------------------------------------ help, settings

COMMANDS = [[], ["serve"], ["worker"], ["migrate"], ["bootstrap"], ["check"], ["export-schema"],
            ["token"], ["token", "create"], ["token", "list"], ["token", "revoke"],
            ["integration"], ["integration", "list"], ["integration", "disable"], ["integration", "enable"],
            ["deliveries"], ["deliveries", "recover"], ["deliveries", "retry"], ["deliveries", "purge"],
            ["deliveries", "export"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "hookyard")
def test_every_command_has_help(env, command) -> None:
    result = hookyard(*command, "--help")
    assert "Usage: hookyard" in result.stdout
    if not command:
        for name in ("serve", "worker", "migrate", "bootstrap", "check", "token", "integration", "deliveries",
                     "export-schema"):
            assert name in result.stdout


def test_the_default_database_follows_the_data_dir(env, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HOOKYARD_DATABASE_URL")
    monkeypatch.setenv("HOOKYARD_DATA_DIR", str(tmp_path / "state"))
    hookyard("migrate")
    assert (tmp_path / "state" / "hookyard.db").is_file()
    assert not (tmp_path / "data").exists()


def test_invalid_settings_are_a_plain_message(env, monkeypatch) -> None:
    monkeypatch.setenv("HOOKYARD_RETRY_SCHEDULE", "5,soon")
    result = hookyard("migrate", code=2)
    assert "HOOKYARD_* settings are not valid" in result.stderr
    assert "entry 2 ('soon')" in result.stderr


# ------------------------------------------------------------------ migrate, bootstrap, tokens

def test_bootstrap_and_tokens(migrated) -> None:
    first = hookyard("bootstrap").stdout.strip()
    assert TOKEN_RE.match(first)
    assert "already set up" in hookyard("bootstrap").stdout

    created = hookyard("token", "create", "--email", "OWNER@localhost", "--name", "ci", "--ability", "events:publish",
                       "--ability", "deliveries:read", "--expires-in", "30d")
    plain = created.stdout.strip()
    assert TOKEN_RE.match(plain), created.stdout  # stdout is the token alone: TOKEN=$(hookyard token create ...)
    assert "shown once" in created.stderr
    token = db(lambda: ApiToken.get(token_hash=hash_token(plain)).select_related("user"))
    assert (token.name, token.user.email, token.abilities) == ("ci", "owner@localhost",
                                                                ["events:publish", "deliveries:read"])
    assert abs(token.expires_at - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert token.id in created.stderr

    default = hookyard("token", "create", "-u", token.user.id, "-n", "everything").stdout.strip()
    assert db(lambda: ApiToken.get(token_hash=hash_token(default))).abilities == list(ABILITIES)

    listed = hookyard("token", "list").stdout
    assert token.id in listed and "ci" in listed and "owner@localhost" in listed and plain[:8] in listed
    every_hash = db(lambda: ApiToken.all().values_list("token_hash", flat=True))
    assert len(every_hash) == 3
    for value in (*every_hash, plain, first, default):
        assert value not in listed

    assert f"revoked {token.id}" in hookyard("token", "revoke", token.id).stdout
    assert db(lambda: ApiToken.get(id=token.id)).revoked_at is not None
    assert token.id not in hookyard("token", "list").stdout
    with_revoked = hookyard("token", "list", "--all").stdout
    assert token.id in with_revoked and "revoked" in with_revoked
    assert hookyard("token", "revoke", token.id).exit_code == 0  # again: nothing changes

    assert "user 'nobody@example.com' not found" in hookyard(
        "token", "create", "--email", "nobody@example.com", "--name", "x", code=1).stderr
    assert "unknown ability 'root'" in hookyard(
        "token", "create", "--email", "owner@localhost", "--name", "x", "-a", "root", code=1).stderr
    assert "not a duration" in unboxed(hookyard(
        "token", "create", "--email", "owner@localhost", "--name", "x", "--expires-in", "soon", code=2).stderr)
    assert "not found" in hookyard("token", "revoke", "tok_nope", code=1).stderr


# ------------------------------------------------------------------ integrations

def test_integration_list_disable_enable(migrated) -> None:
    async def seed():
        acme, other = await _workspace("acme"), await _workspace("other", "other@example.com")
        hook = await _integration(acme, "Acme hook")
        off = await _integration(other, "Other hook", enabled=False, status=IntegrationStatus.DISABLED)
        held = await _delivery(off, DeliveryStatus.HELD, timedelta(hours=1))
        return hook, off, held

    hook, off, held = db(seed)
    listed = hookyard("integration", "list").stdout
    assert hook.id in listed and off.id in listed and "Acme hook" in listed and "DISABLED" in listed
    assert "example.com" not in listed and SIGNING_SECRET not in listed  # no config, no secrets
    only = hookyard("integration", "list", "--workspace", "acme").stdout
    assert hook.id in only and off.id not in only
    assert "workspace 'nope' not found" in hookyard("integration", "list", "-w", "nope", code=1).stderr

    assert "is disabled" in hookyard("integration", "disable", hook.id).stdout
    assert db(lambda: Integration.get(id=hook.id)).enabled is False

    enabled = hookyard("integration", "enable", off.id)
    assert "is enabled; status ACTIVE" in enabled.stdout
    assert "HOOKYARD_REDIS_URL is unset" in enabled.stderr  # the running server's sweeper sends them
    again = db(lambda: Integration.get(id=off.id))
    assert (again.enabled, again.status) == (True, IntegrationStatus.ACTIVE)
    assert db(lambda: Delivery.get(id=held.id)).status == DeliveryStatus.PENDING  # released
    assert "not found" in hookyard("integration", "enable", "int_nope", code=1).stderr


# ------------------------------------------------------------------ recover, retry

def test_deliveries_recover_and_retry(migrated) -> None:
    async def seed():
        hook = await _integration(await _workspace("acme"))
        return hook, {
            "old": await _delivery(hook, DeliveryStatus.FAILED, timedelta(days=10)),
            "failed": await _delivery(hook, DeliveryStatus.FAILED, timedelta(days=2), attempts=3),
            "recent": await _delivery(hook, DeliveryStatus.FAILED, timedelta(hours=2)),
            "ok": await _delivery(hook, DeliveryStatus.SUCCEEDED, timedelta(days=2)),
        }

    hook, rows = db(seed)

    def status(key: str) -> DeliveryStatus:
        return db(lambda: Delivery.get(id=rows[key].id)).status

    since = (NOW - timedelta(days=3)).isoformat()
    result = hookyard("deliveries", "recover", "--integration", hook.id, "--since", since, "--until", "1d")
    assert "queued 1 FAILED delivery" in result.stdout
    assert [status(k) for k in ("old", "failed", "recent", "ok")] == [
        DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED]

    result = hookyard("deliveries", "recover", "-i", hook.id, "--since", "3d", "--status", "succeeded",
                      "--status", "FAILED")
    assert "queued 2 SUCCEEDED/FAILED deliveries" in result.stdout
    assert [status(k) for k in ("old", "recent", "ok")] == [
        DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.PENDING]

    assert hookyard("deliveries", "recover", "-i", hook.id, "--since", "3d", "--status", "PENDING", code=2)
    assert "until: must not be before since" in hookyard(
        "deliveries", "recover", "-i", hook.id, "--since", "1d", "--until", "3d", code=1).stderr
    assert "neither a date/time" in unboxed(
        hookyard("deliveries", "recover", "-i", hook.id, "--since", "lately", code=2).stderr)
    assert "integration 'int_nope' not found" in hookyard(
        "deliveries", "recover", "-i", "int_nope", "--since", "1d", code=1).stderr

    retried = hookyard("deliveries", "retry", rows["old"].id)
    assert f"queued {rows['old'].id} (attempt 1)" in retried.stdout
    assert status("old") == DeliveryStatus.PENDING
    assert "PENDING already" in hookyard("deliveries", "retry", rows["old"].id, code=1).stderr
    assert "not found" in hookyard("deliveries", "retry", "del_nope", code=1).stderr


# ------------------------------------------------------------------ purge

def test_purge_deletes_only_old_finished_deliveries_with_their_attempts(migrated) -> None:
    async def seed():
        hook = await _integration(await _workspace("acme"))
        old, new = timedelta(days=40), timedelta(days=5)
        purged = [await _delivery(hook, s, old, attempts=2) for s in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED,
                                                                       DeliveryStatus.SUCCEEDED)]
        kept = [await _delivery(hook, s, old, attempts=1) for s in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING,
                                                                     DeliveryStatus.SENDING, DeliveryStatus.HELD)]
        kept += [await _delivery(hook, DeliveryStatus.SUCCEEDED, new, attempts=1)]
        return purged, kept

    purged, kept = db(seed)
    result = hookyard("deliveries", "purge", "--older-than", "30d", "--batch", "2")
    assert "deleted 3 deliveries (6 attempts) and 3 events older than 30d" in result.stdout
    assert "purging" in result.stderr  # the progress bar, on stderr

    async def left():
        return (set(await Delivery.all().values_list("id", flat=True)),
                await DeliveryAttempt.filter(delivery_id__in=[d.id for d in purged]).count(),
                await DeliveryAttempt.all().count(), await Event.all().count())

    ids, orphaned, attempts, events = db(left)
    assert ids == {d.id for d in kept}
    assert (orphaned, attempts, events) == (0, len(kept), len(kept))
    assert "deleted 0 deliveries" in hookyard("deliveries", "purge", "--older-than", "6d").stdout
    assert "not a duration" in unboxed(hookyard("deliveries", "purge", "--older-than", "30", code=2).stderr)


# ------------------------------------------------------------------ export

def test_export_jsonl_and_csv_without_secrets(migrated, tmp_path) -> None:
    async def seed():
        hook = await _integration(await _workspace("acme"))
        return hook, [await _delivery(hook, DeliveryStatus.FAILED, timedelta(days=d), attempts=1) for d in (1, 2, 9)]

    hook, rows = db(seed)
    result = hookyard("deliveries", "export", "--since", "7d")
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]  # stdout is data only
    assert sorted(r["id"] for r in records) == sorted(d.id for d in rows[:2])
    first = records[0]
    assert first["integration_id"] == hook.id and first["status"] == "FAILED"
    assert first["error_message"] == "HTTP 500" and first["request"]["method"] == "POST"
    assert datetime.fromisoformat(first["created_at"]) < NOW
    assert "secrets_encrypted" not in first and "locked_until" not in first
    assert "exported 2 deliveries" in result.stderr and "exporting" in result.stderr
    everything = result.stdout + result.stderr
    assert SIGNING_SECRET not in everything and TEST_SECRET_KEY not in everything

    out = tmp_path / "deliveries.csv"
    until = (NOW - timedelta(days=1, hours=12)).isoformat()
    result = hookyard("deliveries", "export", "--since", "30d", "--until", until, "--format", "csv", "-o", str(out))
    assert result.stdout == ""
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["id"] for r in table) == sorted(d.id for d in rows[1:])
    assert json.loads(table[0]["request"])["method"] == "POST" and table[0]["form_id"] == ""
    assert SIGNING_SECRET not in out.read_text()
    assert "--until must not be before --since" in hookyard(
        "deliveries", "export", "--since", "1d", "--until", "3d", code=1).stderr


# ------------------------------------------------------------------ check

def test_check_passes_and_never_prints_secrets(migrated, monkeypatch) -> None:
    monkeypatch.setenv("HOOKYARD_HUBSPOT_CLIENT_SECRET", "hubspot-client-secret-value")
    db(lambda: _workspace("acme"))
    db(lambda: Workspace_integration("acme"))
    result = hookyard("check")
    out = result.stdout
    assert "all checks passed" in out
    assert re.search(r"database\s+│\s+ok", out) and re.search(r"migrations\s+│\s+ok", out)
    assert "embedded" in out and "HOOKYARD_REDIS_URL is unset" in out
    assert "opens the stored integration secrets (1 tried)" in out
    assert migrated["HOOKYARD_DATABASE_URL"] in out and "HOOKYARD_RETRY_SCHEDULE" in out
    assert TEST_SECRET_KEY not in out + result.stderr and "hubspot-client-secret-value" not in out
    assert re.search(r"HOOKYARD_SECRET_KEY\s+│\s+set \(not shown\)", out)


async def Workspace_integration(slug: str) -> Integration:  # noqa: N802 - a seed helper
    from app.models import Workspace

    return await _integration(await Workspace.get(slug=slug))


def test_check_fails_on_pending_migrations(env) -> None:
    result = hookyard("check", code=1)
    assert "not applied" in result.stderr and "hookyard migrate" in result.stderr
    assert "0001_initial" in result.stderr


def test_check_fails_when_the_key_cannot_open_the_stored_secrets(migrated) -> None:
    db(lambda: _workspace("acme"))

    async def sealed_with_another_key():
        from app.models import Workspace

        return await _integration(await Workspace.get(slug="acme"), key="some-other-key-entirely")

    hook = db(sealed_with_another_key)
    result = hookyard("check", code=1)
    assert "HOOKYARD_SECRET_KEY changed?" in result.stderr and hook.id in result.stderr


def test_check_fails_on_a_short_secret_key(migrated, monkeypatch) -> None:
    monkeypatch.setenv("HOOKYARD_SECRET_KEY", "tiny-key")
    result = hookyard("check", code=1)
    assert "secret key: HOOKYARD_SECRET_KEY is too short" in result.stderr
    assert "tiny-key" not in result.stdout + result.stderr  # the value is never shown


def test_check_without_a_secret_key_uses_or_announces_the_key_file(migrated, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("HOOKYARD_SECRET_KEY")
    assert "generates one into" in hookyard("check").stdout
    key_file = Path(migrated["HOOKYARD_DATA_DIR"]) / "secret_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("generated-key-of-the-data-directory")
    out = hookyard("check").stdout
    assert f"using the key file {key_file}" in out and "generated-key-of-the-data-directory" not in out


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_check_redis_when_configured(migrated, monkeypatch) -> None:
    monkeypatch.setenv("HOOKYARD_REDIS_URL", f"redis://:r3disPassw0rd@127.0.0.1:{_free_port()}/13")
    result = hookyard("check", "--timeout", "1", code=1)
    assert "redis: redis://:••••••@127.0.0.1:" in result.stderr and "did not answer" in result.stderr
    assert "r3disPassw0rd" not in result.stdout + result.stderr
    if not _reachable(6379):
        pytest.skip("no Redis on 127.0.0.1:6379")
    monkeypatch.setenv("HOOKYARD_REDIS_URL", "redis://127.0.0.1:6379/13")
    assert re.search(r"redis\s+│\s+ok\s+│\s+redis://127.0.0.1:6379/13 answered", hookyard("check").stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ serve, worker (without running them)

def test_serve_no_worker_runs_the_api_only(migrated, monkeypatch) -> None:
    import app.web.serve

    started = {}
    monkeypatch.setattr(app.web.serve, "serve", lambda api, settings: started.update(app=api, settings=settings))
    result = hookyard("serve", "--no-worker")
    assert started["app"].state.settings.run_worker_in_api is False
    assert "Hookyard is starting at http://127.0.0.1:8000/graphql" in result.stdout
    assert "First API token" in result.stdout
    assert "nothing will be delivered" in unboxed(result.stderr)  # API only, and no shared Redis for a worker
    hookyard("serve")
    assert started["app"].state.settings.run_worker_in_api is True
    assert "Already set up" in hookyard("serve").stdout


def test_worker_concurrency_and_burst(migrated, monkeypatch) -> None:
    import app.workers.settings as worker_settings

    built = {}

    class Worker:
        def run(self) -> None:
            built["ran"] = True

    def build_worker(settings, redis_url, runtime=None, **kwargs):
        built.update(settings=settings, redis_url=redis_url, **kwargs)
        return Worker()

    monkeypatch.setattr(worker_settings, "build_worker", build_worker)
    assert "needs HOOKYARD_REDIS_URL" in hookyard("worker", code=1).stderr
    monkeypatch.setenv("HOOKYARD_REDIS_URL", "redis://127.0.0.1:6379/13")
    hookyard("worker", "--concurrency", "7", "--burst")
    assert (built["settings"].worker_concurrency, built["burst"], built["ran"]) == (7, True, True)
    assert built["redis_url"] == "redis://127.0.0.1:6379/13"
    hookyard("worker")
    assert (built["settings"].worker_concurrency, built["burst"]) == (200, False)
    assert "Invalid value" in unboxed(hookyard("worker", "--concurrency", "0", code=2).stderr)


def test_export_schema_prints_the_sdl(env) -> None:
    from app.schema import export_schema

    assert hookyard("export-schema").stdout == export_schema()


# ------------------------------------------------------------------ real processes

def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    return subprocess.run([str(HOOKYARD), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=timeout, cwd=env.get("HOOKYARD_DATA_DIR", "/").rsplit("/", 1)[0])


pytestmark_processes = pytest.mark.skipif(not HOOKYARD.exists(), reason=f"{HOOKYARD} is not installed")


@pytestmark_processes
def test_process_help(env) -> None:
    done = _run(env, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: hookyard" in done.stdout and "deliveries" in done.stdout


@pytestmark_processes
def test_process_migrate_then_token_list(env) -> None:
    done = _run(env, "migrate")
    assert done.returncode == 0 and "migrations applied" in done.stdout, done.stderr
    done = _run(env, "token", "list")
    assert done.returncode == 0 and "no tokens" in done.stdout, done.stderr
    token = _run(env, "bootstrap").stdout.strip()
    listed = _run({**env, "COLUMNS": "200"}, "token", "list")
    assert "bootstrap" in listed.stdout and "owner@localhost" in listed.stdout and token[:8] in listed.stdout
    assert token not in listed.stdout


@pytestmark_processes
def test_process_check_with_a_bad_postgres_url_hides_its_password(env) -> None:
    url = f"postgres://hookyard:Pa55w0rd-not-to-show@127.0.0.1:{_free_port()}/hookyard"
    done = _run({**env, "HOOKYARD_DATABASE_URL": url}, "check", "--timeout", "3")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Pa55w0rd-not-to-show" not in done.stdout + done.stderr
    assert f"database: postgres://hookyard:••••••@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/hookyard " \
           "did not answer" in done.stderr
    assert TEST_SECRET_KEY not in done.stdout + done.stderr


@pytestmark_processes
def test_process_check_against_postgres_with_a_password(env) -> None:
    """A PostgreSQL server that answers (trust auth) but has no such database: still no password shown."""
    if not _reachable(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    url = "postgres://postgres:An0therSecret@127.0.0.1:5432/hookyard_cli_no_such_db"
    done = _run({**env, "HOOKYARD_DATABASE_URL": url}, "check")
    assert done.returncode == 1
    assert "An0therSecret" not in done.stdout + done.stderr
    assert "database: postgres://postgres:••••••@127.0.0.1:5432/hookyard_cli_no_such_db did not answer" in done.stderr


def test_main_returns_after_a_command_that_succeeds_and_exits_after_one_that_fails(env, capsys) -> None:
    """`from app.cli import main; main(["migrate"])` goes on with the caller's program, as it always did."""
    from app.cli import main

    main(["migrate"])
    assert "migrations applied" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["token", "revoke", "tok_nope"])
    assert info.value.code == 1


@pytestmark_processes
def test_process_python_m_app_cli(env) -> None:
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "app.cli", "migrate"],
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}, **env},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "migrations applied" in done.stdout, done.stderr


@pytestmark_processes
def test_process_migrate_makes_an_event_index_that_narrows_a_prefix(env) -> None:
    """The log's `invoice.*` filter is an index range on PostgreSQL whatever the collation (migration 0010)."""
    done = _run(env, "migrate")
    assert done.returncode == 0, done.stderr
    url = env["HOOKYARD_DATABASE_URL"]
    count = ("SELECT COUNT(*) FROM (SELECT id FROM delivery WHERE workspace_id = 'ws_1' "
             "AND CAST(event_type AS VARCHAR) LIKE 'invoice.%' ESCAPE '\\' LIMIT 1001) AS capped")
    if url.startswith("sqlite://"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            [(sql,)] = db.execute("SELECT sql FROM sqlite_master WHERE name = 'idx_delivery_event_prefix'").fetchall()
        assert '("workspace_id", "event_type", "id")' in sql
        return
    import asyncpg

    async def plan() -> str:
        db = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
        try:  # 8,000 deliveries of four event families, planned from their statistics (parents left out)
            await db.execute("SET session_replication_role = replica")
            await db.execute(
                "INSERT INTO delivery (id, workspace_id, event_id, integration_id, event_type, status, is_test, "
                "attempt_count, created_at, updated_at) SELECT 'del_' || lpad(n::text, 26, '0'), 'ws_1', 'evt_1', "
                "'int_1', (ARRAY['api.called', 'form.sent', 'invoice.paid', 'user.seen'])[n % 4 + 1], 'SUCCEEDED', "
                "false, 1, now(), now() FROM generate_series(1, 8000) AS n")
            await db.execute("ANALYZE delivery")
            await db.execute("SET enable_seqscan = off")
            return "\n".join(row[0] for row in await db.fetch(f"EXPLAIN {count}"))
        finally:
            await db.close()

    explained = asyncio.run(plan())
    assert "idx_delivery_event_prefix" in explained and "event_type ~>=~ 'invoice.'" in explained, explained
