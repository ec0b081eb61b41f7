"""`make bench-all` writes its run at the top of bench/RESULTS.md and keeps the dated record below it;
a second run replaces the first run's block, not the record."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench_all():
    spec = importlib.util.spec_from_file_location("bench_all", ROOT / "bench" / "all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_all", module)  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


RECORD = "# Benchmark results\n\nIntro.\n\n## Late night (2026-11-24)\n\n| run | 1,691/s |\n"


def test_a_run_goes_under_the_title_and_the_record_stays() -> None:
    bench_all = _bench_all()
    written = bench_all.with_latest_run(RECORD, "Written by `make bench-all` on day one.\n\n### Two workers\n")
    assert written.startswith("# Benchmark results\n\n" + bench_all.BEGIN)
    assert "Written by `make bench-all` on day one." in written
    assert written.endswith("Intro.\n\n## Late night (2026-11-24)\n\n| run | 1,691/s |\n")


def test_the_next_run_replaces_the_last_one_only() -> None:
    bench_all = _bench_all()
    once = bench_all.with_latest_run(RECORD, "day one figures")
    twice = bench_all.with_latest_run(once, "day two figures")
    assert "day two figures" in twice and "day one figures" not in twice
    assert twice.count(bench_all.BEGIN) == 1 and twice.count(bench_all.END) == 1
    assert twice.endswith("## Late night (2026-11-24)\n\n| run | 1,691/s |\n")
    assert twice == bench_all.with_latest_run(twice, "day two figures")


def test_a_missing_file_gets_a_title() -> None:
    written = _bench_all().with_latest_run("", "figures")
    assert written.startswith("# Benchmark results\n\n") and "figures" in written
