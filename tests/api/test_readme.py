"""The README's examples, run the way a new user would run them.

Every ```graphql block must validate against schema.graphql, and the operations run in README
order against the live test server with the variables of the ```json block that follows them:
`"default"` (the workspace) becomes the test account's workspace, `https://example.com/hooks`
the test receiver, and `<integration-id>` / `<delivery-id>` the ids that earlier examples
answered. A block whose comment line says `# expect: errors` must answer errors; every other
one must answer none, neither at the top level nor in a payload's `errors`.

The curl commands of "Try it locally" run with curl against the README's own receiver, and the
Python (gql) and JavaScript (graphql-ws) client programs run in subprocesses; the subscribers must
print an update for an event the test publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from graphql import OperationDefinitionNode, OperationType, build_schema, parse, validate

from app.config import Settings
from app.core.ssrf import check_target_url
from app.models import PortalSession, Workspace
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish, settled

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SCHEMA = ROOT / "schema.graphql"

README_WORKSPACE = "default"
README_HOOK_URL = "https://example.com/hooks"
README_RECEIVER_PORT = "9000"
PLACEHOLDER = re.compile(r"^<[a-z][a-z-]*>$")
EXPECT_ERRORS = re.compile(r"^\s*#\s*expect:\s*errors\s*$", re.M)
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
PROCESS_TIMEOUT = 30.0
# The README's last eventPublish again, with a new idempotency key, to make a delivery update.
PUBLISH_AGAIN = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  deliveries { id } errors { field message code } } }"""


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # of the opening fence
    start: int
    end: int


@dataclass(frozen=True)
class GraphQLExample:
    query: str
    variables: dict[str, Any]
    line: int
    expect_errors: bool

    @property
    def operation(self) -> OperationDefinitionNode | None:
        ops = [d for d in parse(self.query).definitions if isinstance(d, OperationDefinitionNode)]
        return ops[0] if len(ops) == 1 else None


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.start(), m.end())
            for m in FENCE.finditer(text)]


def graphql_examples() -> list[GraphQLExample]:
    """Each ```graphql block with the variables of the ```json block right after it (nothing but blank lines
    in between), or none."""
    blocks = readme_blocks()
    text = README.read_text(encoding="utf-8")
    examples = []
    for i, block in enumerate(blocks):
        if block.lang != "graphql":
            continue
        variables: dict[str, Any] = {}
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        if following and following.lang == "json" and not text[block.end:following.start].strip():
            try:
                variables = json.loads(following.code)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"README.md:{following.line}: the variables are not JSON: {exc}") from exc
            assert isinstance(variables, dict), f"README.md:{following.line}: variables must be a JSON object"
        examples.append(GraphQLExample(block.code, variables, block.line, bool(EXPECT_ERRORS.search(block.code))))
    return examples


def marked_block(lang: str, marker: str) -> str:
    """The block of `lang` whose first line starts with `marker` (the client programs name their file so)."""
    found = [b.code for b in readme_blocks() if b.lang == lang and b.code.startswith(marker)]
    assert len(found) == 1, f"README.md should hold exactly one ```{lang} block starting with {marker!r}"
    return found[0]


def sh_blocks(predicate) -> list[Block]:
    return [b for b in readme_blocks() if b.lang == "sh" and predicate(b.code)]


EXAMPLES = graphql_examples()


def test_readme_has_a_walkthrough_of_graphql_examples():
    kinds = [e.operation.operation for e in EXAMPLES if e.operation]
    assert len(EXAMPLES) >= 10 and OperationType.SUBSCRIPTION in kinds, "README.md lost its GraphQL examples"
    names = {field for e in EXAMPLES for field in re.findall(r"\b(eventPublish|integrationConnect|formCreate)\(",
                                                             e.query)}
    assert names == {"eventPublish", "integrationConnect", "formCreate"}


def test_readme_sends_readers_to_no_file_outside_the_repository():
    text = README.read_text(encoding="utf-8")
    assert "../" not in text, "README.md points outside the repository"
    assert "DESIGN.md" not in text, "README.md refers to a design document a clone does not have"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"README.md:{e.line}" for e in EXAMPLES])
def test_graphql_example_is_valid_against_the_schema(example: GraphQLExample):
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    document = parse(example.query)
    errors = validate(schema, document)
    assert not errors, [e.message for e in errors]
    operation = example.operation
    assert operation is not None, "one operation per example"
    declared = {d.variable.name.value for d in operation.variable_definitions}
    undeclared = set(example.variables) - declared
    assert not undeclared, f"variables the operation does not declare: {undeclared}"
    required = {d.variable.name.value for d in operation.variable_definitions
                if d.type.kind == "non_null_type" and d.default_value is None}
    missing = required - set(example.variables)
    assert not missing, f"required variables without a value: {missing}"


# --- running the walkthrough -----------------------------------------------------------------------------------


def substitute(value: Any, replacements: dict[str, str], where: str) -> Any:
    """The README's variables with its placeholders replaced by this test's workspace, receiver and ids."""
    if isinstance(value, dict):
        return {k: substitute(v, replacements, where) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, replacements, where) for v in value]
    if isinstance(value, str) and value in replacements:
        return replacements[value]
    if isinstance(value, str) and PLACEHOLDER.match(value):
        raise AssertionError(f"{where}: {value} is used before an earlier example answers it")
    return value


def problems(body: dict) -> list:
    """Top-level errors, then the non-empty `errors` of every payload in the answer."""
    found = list(body.get("errors") or [])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("errors"), list):
                found.extend(node["errors"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(body.get("data"))
    return found


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://", 1) + "/graphql"


async def subscribers(server, slug: str) -> int:
    workspace = await Workspace.get(slug=slug)
    return len(server.broadcaster.subscribers.get(workspace.id, ()))


async def first_update(server, token: str, slug: str, query: str, variables: dict, trigger) -> dict:
    """Subscribes like the README says, calls `trigger` once the server holds the subscriber, and answers
    the first result (as a GraphQL response body)."""
    transport = WebsocketsTransport(url=ws_url(server), init_payload={"authorization": f"Bearer {token}"},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                                    connect_timeout=5, ack_timeout=5, close_timeout=2)
    before = await subscribers(server, slug)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        results = session.subscribe(GraphQLRequest(query, variable_values=variables), get_execution_result=True)
        following = asyncio.ensure_future(anext(results))
        try:
            async def registered() -> bool:
                return following.done() or await subscribers(server, slug) > before

            await eventually(registered, timeout=10, what="the subscription to reach the server")
            await trigger()
            result = await asyncio.wait_for(following, 20)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await following
            with contextlib.suppress(Exception):
                await results.aclose()
    return {"data": result.data, "errors": [e.formatted for e in result.errors or []]}


async def test_graphql_examples_run_in_readme_order(server, account, receiver):
    hook_url = receiver.url("/hooks")  # answers 200
    replacements = {README_WORKSPACE: account.slug, README_HOOK_URL: hook_url}
    last_publish: dict | None = None

    async def publish_again() -> None:
        assert last_publish is not None, "the subscription example should come after an eventPublish example"
        again = {"input": {**last_publish["input"], "idempotencyKey": f"readme-{uuid.uuid4().hex}"}}
        body = await account.gql.raw(PUBLISH_AGAIN, again)
        assert not problems(body), body

    for example in EXAMPLES:
        where = f"README.md:{example.line}"
        variables = substitute(example.variables, replacements, where)
        if example.operation.operation == OperationType.SUBSCRIPTION:
            body = await first_update(server, account.token, account.slug, example.query, variables, publish_again)
        else:
            body = await account.gql.raw(example.query, variables)
        if example.expect_errors:
            assert problems(body), f"{where} is shown answering errors, but it answered {body}"
            continue
        assert not problems(body), f"{where} answered errors: {problems(body)}"
        data = body["data"]
        connected = (data.get("integrationConnect") or {}).get("integration")
        if connected:
            replacements["<integration-id>"] = connected["id"]
        if "eventPublish" in data:
            deliveries = data["eventPublish"]["deliveries"]
            assert deliveries, f"{where}: publishing in README order must deliver to the webhook connected before"
            replacements["<delivery-id>"] = deliveries[0]["id"]
            last_publish = variables
            # A reader runs the next example a few seconds later: by then the delivery reached the receiver.
            assert (await settled(deliveries[0]["id"])).status.value == "SUCCEEDED"
        if "deliveryUpdates" in data:
            assert data["deliveryUpdates"]["delivery"]["integration"]["id"] == replacements["<integration-id>"]
    assert receiver.at("/hooks"), "the walkthrough's webhook received nothing"


def test_the_allowed_network_of_try_it_locally_lets_sends_reach_this_machine():
    text = README.read_text(encoding="utf-8")
    assert "HOOKYARD_ALLOWED_NETWORKS=127.0.0.0/8 make run" in text
    local = f"http://127.0.0.1:{README_RECEIVER_PORT}/hooks"
    assert check_target_url(local, Settings(allowed_networks="").allowed_networks) is not None
    assert check_target_url(local, Settings(allowed_networks="127.0.0.0/8").allowed_networks) is None


# --- processes: curl, the README's receiver, the Python and JavaScript clients ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(server, account) -> dict[str, str]:
    return {**os.environ, "HOOKYARD_URL": f"{server.url}/graphql", "HOOKYARD_TOKEN": account.token}


def for_account(code: str, account) -> str:
    """The README's code with its workspace `default` replaced by the test account's."""
    replaced = code.replace(f'"{README_WORKSPACE}"', f'"{account.slug}"').replace(
        f"'{README_WORKSPACE}'", f"'{account.slug}'")
    assert replaced != code, "the example should name the `default` workspace"
    return replaced


class Program:
    """A long-running example in its own process group, its output (stdout and stderr) read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, what: str):
        self.process = process
        self.what = what
        self.output: list[str] = []

    @classmethod
    async def start(cls, what: str, *argv: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Program:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        return cls(process, what)

    async def line_with(self, text: str, timeout: float = PROCESS_TIMEOUT) -> str:
        async def read() -> str:
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    code = await self.process.wait()
                    raise AssertionError(f"{self.what} exited ({code}) without printing {text!r}:\n"
                                         + "".join(self.output))
                self.output.append(raw.decode(errors="replace"))
                if text in self.output[-1]:
                    return self.output[-1]

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.what} printed no {text!r} within {timeout:g} s:\n"
                                 + "".join(self.output)) from None

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                await self.process.wait()


async def run(what: str, *argv: str, env: dict[str, str], cwd: Path = ROOT) -> str:
    """Runs a short example to its end and answers its standard output; it must succeed."""
    process = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{what} did not finish within {PROCESS_TIMEOUT:g} s") from None
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{err.decode()}\n{out.decode()}"
    return out.decode()


def answer_of(what: str, output: str) -> dict:
    try:
        body = json.loads(output)
    except json.JSONDecodeError:
        raise AssertionError(f"{what} printed no JSON:\n{output}") from None
    assert not problems(body), f"{what} answered errors: {problems(body)}"
    return body


async def test_try_it_locally_with_curl_and_the_readme_receiver(server, account):
    assert shutil.which("curl"), "curl is not installed: the README's curl examples need it"
    port = str(_free_port())
    [receiver_block] = sh_blocks(lambda code: "HTTPServer(" in code)
    assert f"HTTPServer((\"127.0.0.1\", {README_RECEIVER_PORT})" in receiver_block.code
    receiver = await Program.start("the README's receiver", "bash", "-c",
                                   receiver_block.code.replace(README_RECEIVER_PORT, port))
    try:
        await eventually(lambda: _listening(int(port)) or receiver.process.returncode is not None, timeout=10,
                         what="the README's receiver to listen")
        assert receiver.process.returncode is None, f"the README's receiver exited: {receiver.output}"
        curls = sh_blocks(lambda code: code.startswith("curl "))
        ops = [_operation_of(block.code) for block in curls]
        assert ops[:3] == ["integrationConnect", "eventPublish", "deliveries"], ops
        env = client_env(server, account)
        delivery_id = None
        for block, op in zip(curls, ops, strict=True):
            where = f"the curl example at README.md:{block.line}"
            code = for_account(block.code, account).replace(f"127.0.0.1:{README_RECEIVER_PORT}", f"127.0.0.1:{port}")
            body = answer_of(where, await run(where, "bash", "-c", code, env=env))
            if op == "eventPublish":
                [delivery] = body["data"]["eventPublish"]["deliveries"]
                delivery_id = delivery["id"]
                line = await receiver.line_with(delivery_id)
                printed_id, body_text = line.split(" ", 1)
                sent = json.loads(body_text)
                assert printed_id == delivery_id and sent["type"] == "order.created", line
                assert sent["data"] == {"orderId": 1001, "total": "49.90"}, line
                assert (await settled(delivery_id)).status.value == "SUCCEEDED"
            elif op == "deliveries":
                nodes = [e["node"] for e in body["data"]["workspace"]["deliveries"]["edges"]]
                assert [(n["id"], n["status"]) for n in nodes] == [(delivery_id, "SUCCEEDED")], nodes
    finally:
        await receiver.stop()


def _operation_of(curl: str) -> str:
    return next((op for op in ("integrationConnect", "eventPublish", "deliveries") if op in curl), "other")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _wait_for_subscriber(server, account, program: Program) -> None:
    async def registered() -> bool:
        return program.process.returncode is not None or await subscribers(server, account.slug) > 0

    await eventually(registered, timeout=PROCESS_TIMEOUT, what=f"{program.what} to subscribe")
    assert program.process.returncode is None, f"{program.what} exited:\n" + "".join(program.output)


async def _publish_and_receive(server, account, receiver, publish_argv: list[str], subscribe_argv: list[str],
                               what: str) -> None:
    """The example's publish delivers to a webhook, and its subscriber prints the update of a new event."""
    await connect_webhook(account, receiver.url("/orders"), events=["order.*"])
    env = client_env(server, account)
    body = answer_of(f"the {what} publish example", await run(f"the {what} publish example", *publish_argv, env=env))
    published = body.get("data", body).get("eventPublish", body)
    assert published["created"] is True and len(published["deliveries"]) == 1, published
    assert (await settled(published["deliveries"][0]["id"])).status.value == "SUCCEEDED"

    subscriber = await Program.start(f"the {what} subscription example", *subscribe_argv, env=env)
    try:
        await _wait_for_subscriber(server, account, subscriber)
        [delivery] = (await publish(account, "order.created", {"orderId": 7}))["deliveries"]
        line = await subscriber.line_with(delivery["id"])
        assert "order.created" in line, line
    finally:
        await subscriber.stop()


async def test_python_gql_examples_publish_and_subscribe(server, account, receiver, tmp_path):
    files = {}
    for name in ("publish.py", "subscribe.py"):
        files[name] = tmp_path / name
        files[name].write_text(for_account(marked_block("python", f"# {name}"), account))
    await _publish_and_receive(server, account, receiver, [sys.executable, str(files["publish.py"])],
                               [sys.executable, "-u", str(files["subscribe.py"])], "Python (gql)")


def node_with_modules() -> str:
    """node, with the packages the JavaScript examples import installed in the repository; never a skip."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the README's JavaScript examples need Node 20 or newer")
    missing = [p for p in ("graphql", "graphql-ws", "ws") if not (ROOT / "node_modules" / p / "package.json").is_file()]
    if missing:
        pytest.fail(f"node_modules lacks {', '.join(missing)}: run `npm ci` in {ROOT} (package.json lists them)")
    return node


async def test_javascript_graphql_ws_examples_publish_and_subscribe(server, account, receiver):
    node = node_with_modules()
    # Code given with -e resolves its imports from the working directory: the repository root, with node_modules.
    programs = {name: for_account(marked_block("js", f"// {name}"), account)
                for name in ("publish.mjs", "subscribe.mjs")}
    await _publish_and_receive(server, account, receiver,
                               [node, "--input-type=module", "-e", programs["publish.mjs"]],
                               [node, "--input-type=module", "-e", programs["subscribe.mjs"]], "JavaScript")


async def test_embedding_the_portal_backend_examples_make_working_sessions(server, account):
    node = node_with_modules()
    env = client_env(server, account)
    outputs = {
        "Python": await run("the Python portal session example", sys.executable, "-c",
                            for_account(marked_block("python", "# portal_session.py"), account), env=env),
        "Node": await run("the Node portal session example", node, "--input-type=module", "-e",
                          for_account(marked_block("js", "// portal-session.mjs"), account), env=env),
    }
    for what, output in outputs.items():
        portal_url = output.strip()
        match = re.fullmatch(r"(\S+)/portal\?session=(pss_\w+)#token=(hyp_[\w-]+)", portal_url)
        assert match, f"{what}: {portal_url!r}"
        session = await PortalSession.get(id=match[2]).select_related("workspace")
        assert session.workspace.slug == account.slug and session.allowed_origins == ["https://app.example.com"]
        answered = await account.gql("{ portalSession { workspace } }", token=match[3])
        assert answered["portalSession"]["workspace"] == account.slug
