"""Every benchmark, one after the other, and what they printed written at the top of bench/RESULTS.md.

    .venv/bin/python bench/all.py [--quick] [--only NAME ...] [--output bench/RESULTS.md]

Each benchmark runs as its own process with the command shown in the results, so any figure can be
measured again alone. The figures are ratios to a baseline each benchmark measures in the same run
(a plain aiohttp sender, a plain Redis subscriber, a plain Starlette endpoint, the 10k-row log), so
they compare across machines; the absolute numbers are this machine's. `--quick` runs smaller sizes
(for a smoke test of the harness, not for the record).

The run replaces the block the previous `make bench-all` wrote (between two HTML comments under the title)
and keeps the rest of the file: the dated sections below it are the record of earlier measurements.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    argv: tuple[str, ...]
    quick: tuple[str, ...] = ()  # extra arguments with --quick
    what: str = ""


BENCHES = (
    Bench("throughput", "End to end, single-event eventPublish",
          ("bench/throughput.py",), ("--events", "200", "--latency-seconds", "3", "--baseline-posts", "2000"),
          "1,000 events x 10 webhooks through GraphQL `eventPublish`, one worker; then 500 deliveries/s for "
          "10 s. Target: >= 0.40x the plain sender, p99 < 150 ms."),
    Bench("throughput-1000", "Latency at 1,000 deliveries/s",
          ("bench/throughput.py", "--rate", "1000", "--events", "500"),
          ("--events", "200", "--latency-seconds", "3", "--baseline-posts", "2000"),
          "Target: p99 < 250 ms at 1,000 deliveries/s."),
    Bench("throughput-batch", "Batch publishing (eventsPublish)",
          ("bench/throughput.py", "--batch", "50"), ("--events", "200", "--latency-seconds", "3",
                                                      "--baseline-posts", "2000"),
          "The same events published 50 per `eventsPublish` call. Target: >= 0.60x the plain sender."),
    Bench("throughput-controlled", "Delivery control does not slow the others",
          ("bench/throughput.py", "--controlled", "4"), ("--events", "200", "--latency-seconds", "3",
                                                         "--baseline-posts", "2000"),
          "The default run plus 4 integrations on the same events: 2 ORDERED in one lane, 2 rate-limited "
          "(100/s, 2 in flight). Their deliveries are not counted: compare with the default run."),
    Bench("floor", "The floor: the same I/O without the framework",
          ("bench/floor.py",), ("--events", "200", "--baseline-posts", "2000"),
          "A bare asyncpg + Redis + aiohttp pipeline doing a delivery's writes, queueing and signed send on "
          "Hookyard's schema, against the same plain sender: what this design can reach on this machine. "
          "Compare with the single-event run above."),
    Bench("floor-batch", "The floor, 50 events a call",
          ("bench/floor.py", "--batch", "50"), ("--events", "200", "--baseline-posts", "2000"),
          "The floor with the events published 50 a call; compare with the batch run above."),
    Bench("two-workers", "Two workers",
          ("bench/throughput.py", "--workers", "2"), ("--events", "200", "--latency-seconds", "3",
                                                      "--baseline-posts", "2000"),
          "Two worker processes on this 2-core machine must never deliver less than one."),
    Bench("sustained", "Sustained: 100,000 deliveries",
          ("bench/throughput.py", "--events", "10000", "--latency-seconds", "10", "--timeout", "900"),
          ("--events", "500", "--latency-seconds", "3", "--baseline-posts", "2000"),
          "The end-to-end ratio over 100,000 deliveries, with the processes' memory before and after."),
    Bench("record-wave", "Recording a wave of sends",
          ("bench/record_wave.py",), ("--rounds", "2", "--waves", "50"),
          "`batch_sql.record` (each attempt and its delivery's new state as one statement, one `executemany` "
          "per wave) against the same rows as two statements in a transaction, alternating in one run."),
    Bench("reads", "Reads: the delivery log page",
          ("bench/reads.py",), ("--seconds", "2", "--runs", "1"),
          "`workspace.deliveries(first: 100)` with attempts, next to a plain Starlette endpoint returning the "
          "same rows. Target: >= 0.5x."),
    Bench("subscribers", "Live fan-out: 1,000 subscribers",
          ("bench/subscribers.py",), ("--clients", "200", "--messages", "20"),
          "1,000 graphql-transport-ws subscribers on one API process, next to one plain Redis subscriber. "
          "Target: p99 < 100 ms, <= 40 us of API CPU per client message."),
    Bench("log-growth", "The delivery log as it grows",
          ("bench/log_growth.py",), ("--sizes", "10000,30000", "--runs", "3"),
          "Pages, filters and cursors at 10k, 100k and 1M deliveries, and a purge while sending. Target: "
          "within 2x of the 10k time."),
)


def _run(command: list[str], timeout: float) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + (("\n" + done.stderr) if done.returncode else ""), done.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        output, code = output + f"\n(timed out after {timeout:g} s)", -1
    return code, output.strip(), time.monotonic() - started


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        total = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        kib = int(total.split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    packages = []
    for name in ("strawberry-graphql", "starlette", "uvicorn", "tortoise-orm", "arq", "aiohttp", "orjson", "redis"):
        try:
            from importlib.metadata import version

            packages.append(f"{name} {version(name)}")
        except Exception:
            continue
    return [
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {memory} RAM, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; PostgreSQL: {_version(['psql', '--version'])}; "
        f"Redis: {_version(['redis-server', '--version'])}",
        f"- Packages: {', '.join(packages)}",
    ]


BEGIN = "<!-- written by make bench-all: begin -->"
END = "<!-- written by make bench-all: end -->"


def with_latest_run(previous: str, report: str) -> str:
    """`previous` (RESULTS.md as it stands) with the block the last `make bench-all` wrote replaced by
    `report`, or `report` put under the title when there is none: the dated record below is kept."""
    block = f"{BEGIN}\n\n## Latest `make bench-all`\n\n{report.strip()}\n\n{END}"
    if BEGIN in previous and END in previous:
        head, rest = previous.split(BEGIN, 1)
        return f"{head}{block}{rest.split(END, 1)[1]}"
    title, _, body = previous.partition("\n")
    if not title.startswith("# "):
        return f"# Benchmark results\n\n{block}\n\n{previous}".rstrip() + "\n"
    return f"{title}\n\n{block}\n\n{body.lstrip()}".rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the harness, not for the record")
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BENCHES], help="run only these")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark at most")
    args = parser.parse_args()

    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    started = datetime.now(UTC)
    sections: list[str] = []
    failed = []
    for bench in chosen:
        command = [PYTHON, *bench.argv, *(bench.quick if args.quick else ())]
        shown = " ".join([".venv/bin/python", *command[1:]])
        print(f"== {bench.name}: {shown}", flush=True)
        code, output, seconds = _run(command, args.timeout)
        print(output[-3000:], flush=True)
        if code != 0:
            failed.append(bench.name)
        status = "ok" if code == 0 else f"exit {code}"
        sections += [f"### {bench.title}", "", bench.what, "", f"`{shown}` ({seconds:.0f} s, {status})", "",
                     "```", output, "```", ""]

    lines = [
        f"Written by `make bench-all` (`bench/all.py{' --quick' if args.quick else ''}`) on "
        f"{started:%Y-%m-%d %H:%M} UTC. Every figure below is also a ratio to a baseline the benchmark "
        "measured in the same run; rerun one with the command under its heading.",
        "",
        *machine(),
        "",
        *sections,
    ]
    if args.quick:
        lines.insert(0, "**Quick run (small sizes): checks the harness; not figures to quote.**\n")
    previous = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(with_latest_run(previous, "\n".join(lines)))
    print(f"wrote {args.output}" + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
