"""The worker's send coalescer: jobs that start together share one batch, each gets its own results."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from app.delivery import batching


@pytest.fixture
def calls(monkeypatch):
    """Replaces the real send with one that records its batches and answers after a short while."""
    seen: list[tuple[list[str], str]] = []

    async def attempt_deliveries(ids, runtime, trigger="automatic", settled=None):
        seen.append((list(ids), trigger))
        await asyncio.sleep(0.02)
        if "boom" in ids:
            raise RuntimeError("database down")
        return [SimpleNamespace(delivery=SimpleNamespace(id=i)) for i in ids if not i.startswith("skip")]

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    return seen


def ids_of(results) -> list[str]:
    return [r.delivery.id for r in results]


async def test_a_lone_job_goes_at_once(calls):
    coalescer = batching.SendCoalescer(runtime=None, window=10)
    assert ids_of(await asyncio.wait_for(coalescer.attempt(["a", "b"]), 1)) == ["a", "b"]
    assert calls == [(["a", "b"], "automatic")]


async def test_jobs_starting_while_a_batch_runs_share_the_next_one(calls):
    coalescer = batching.SendCoalescer(runtime=None, window=0.005)
    first = asyncio.ensure_future(coalescer.attempt(["a"]))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(coalescer.attempt(group)) for group in (["b", "c"], ["skip-d"], ["e"])]
    results = await asyncio.gather(first, *later)
    assert [ids_of(r) for r in results] == [["a"], ["b", "c"], [], ["e"]]
    assert calls == [(["a"], "automatic"), (["b", "c", "skip-d", "e"], "automatic")]


async def test_triggers_are_never_mixed_and_tests_never_wait(calls):
    coalescer = batching.SendCoalescer(runtime=None, window=0.005)
    first = asyncio.ensure_future(coalescer.attempt(["a"]))
    await asyncio.sleep(0)
    manual = asyncio.ensure_future(coalescer.attempt(["m"], "manual"))
    automatic = asyncio.ensure_future(coalescer.attempt(["b"]))
    test = await coalescer.attempt(["t"], "test")
    await asyncio.gather(first, manual, automatic)
    assert ids_of(test) == ["t"]
    assert sorted(calls) == sorted([(["a"], "automatic"), (["t"], "test"), (["m"], "manual"),
                                    (["b"], "automatic")])


async def test_a_failed_batch_fails_each_of_its_jobs_and_a_cancelled_job_not_its_neighbours(calls):
    coalescer = batching.SendCoalescer(runtime=None, window=0.005)
    first = asyncio.ensure_future(coalescer.attempt(["a"]))
    await asyncio.sleep(0)
    doomed = [asyncio.ensure_future(coalescer.attempt(group)) for group in (["boom"], ["x"])]
    for job in doomed:
        with pytest.raises(RuntimeError, match="database down"):
            await job
    await first

    first = asyncio.ensure_future(coalescer.attempt(["a2"]))
    await asyncio.sleep(0)
    cancelled = asyncio.ensure_future(coalescer.attempt(["c"]))
    kept = asyncio.ensure_future(coalescer.attempt(["k"]))
    await asyncio.sleep(0.001)
    cancelled.cancel()
    assert ids_of(await kept) == ["k"]
    await first
    # The cancelled job's delivery still goes with the batch; arq's re-run of the job finds it claimed.
    assert calls[-1] == (["c", "k"], "automatic")


async def test_a_full_batch_does_not_wait_for_the_window(calls):
    coalescer = batching.SendCoalescer(runtime=None, window=10, max_batch=3)
    first = asyncio.ensure_future(coalescer.attempt(["a"]))
    await asyncio.sleep(0)
    full = [asyncio.ensure_future(coalescer.attempt(group)) for group in (["b"], ["c", "d"])]
    await asyncio.wait_for(asyncio.gather(first, *full), 1)
    assert calls == [(["a"], "automatic"), (["b", "c", "d"], "automatic")]


async def test_in_flight_deliveries_are_capped_and_the_rest_go_as_sends_are_recorded(monkeypatch):
    """A backlog is not claimed all at once: past `max_in_flight` claimed and unrecorded deliveries, jobs
    wait with their ids only, and each recorded send lets the next ones go, even while a slow sibling of
    its batch is still out."""
    in_flight, most, batches = 0, 0, []

    async def attempt_deliveries(ids, runtime, trigger="automatic", settled=None):
        nonlocal in_flight, most
        batches.append(list(ids))
        in_flight += len(ids)
        most = max(most, in_flight)

        async def send(i):
            nonlocal in_flight
            await asyncio.sleep(1.0 if i == "slow" else 0.01)
            in_flight -= 1
            result = SimpleNamespace(delivery=SimpleNamespace(id=i))
            settled([i], [result])
            return result

        return list(await asyncio.gather(*(send(i) for i in ids)))

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    coalescer = batching.SendCoalescer(runtime=None, window=0.001, max_batch=3, max_in_flight=4)
    jobs = [asyncio.ensure_future(coalescer.attempt([i])) for i in ["slow", *"abcdefghijk"]]
    done, _ = await asyncio.wait(jobs[1:], timeout=0.8)  # all but the slow one, long before it answers
    assert len(done) == 11 and not jobs[0].done()
    assert [ids_of(job.result()) for job in jobs[1:]] == [[i] for i in "abcdefghijk"]
    assert most <= 4  # a batch starts only when it fits
    assert len(batches) > 2 and all(len(b) <= 3 for b in batches)
    assert ids_of(await jobs[0]) == ["slow"]
    assert coalescer._in_flight == 0


async def test_sends_recorded_meanwhile_do_not_break_up_the_next_batch(monkeypatch):
    """Under the in-flight limit, a wave of recorded sends does not start the jobs waiting for their window:
    they still go together (each wave starting the few that came since made many small batches)."""
    batches = []

    async def attempt_deliveries(ids, runtime, trigger="automatic", settled=None):
        batches.append(list(ids))
        results = [SimpleNamespace(delivery=SimpleNamespace(id=i)) for i in ids]
        for result in results:
            await asyncio.sleep(0.03)
            settled([result.delivery.id], [result])
        return results

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    # The first batch records a send every 30 ms for 180 ms; one job arrives before its first record, the
    # others between records; all wait for the 300 ms window of the first of them.
    coalescer = batching.SendCoalescer(runtime=None, window=0.3, max_batch=10, max_in_flight=100)
    first = asyncio.ensure_future(coalescer.attempt(["a1", "a2", "a3", "a4", "a5", "a6"]))
    later = []
    for name, pause in (("b", 0.01), ("c", 0.035), ("d", 0.03)):
        await asyncio.sleep(pause)
        later.append(asyncio.ensure_future(coalescer.attempt([name])))
    await asyncio.gather(first, *later)
    assert batches == [["a1", "a2", "a3", "a4", "a5", "a6"], ["b", "c", "d"]]


async def test_a_hanging_receiver_does_not_hold_the_line_past_the_hold(monkeypatch):
    """Sends that hang stop counting against the in-flight limit after `hold_seconds`: the jobs behind them
    go then, not when the hanging sends time out."""
    async def attempt_deliveries(ids, runtime, trigger="automatic", settled=None):
        await asyncio.sleep(5.0 if ids[0].startswith("hang") else 0.01)
        results = [SimpleNamespace(delivery=SimpleNamespace(id=i)) for i in ids]
        settled(ids, results)
        return results

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    coalescer = batching.SendCoalescer(runtime=None, window=0.001, max_batch=4, max_in_flight=4,
                                       hold_seconds=0.2)
    hanging = asyncio.ensure_future(coalescer.attempt(["hang1", "hang2", "hang3", "hang4"]))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    assert ids_of(await asyncio.wait_for(coalescer.attempt(["fast"]), 2)) == ["fast"]
    assert 0.15 < asyncio.get_running_loop().time() - started < 1.0  # held only until the hold ran out
    await coalescer.close()  # the worker's shutdown: the hanging batch is cancelled
    with pytest.raises(asyncio.CancelledError):
        await hanging


async def test_each_job_is_answered_when_its_own_deliveries_are_settled_not_when_its_batch_is(monkeypatch):
    """Jobs sharing a batch do not wait for each other: one whose deliveries are recorded (or put back, or
    waiting for a slot of their integration) is answered while a neighbour's receiver is still slow."""
    async def attempt_deliveries(ids, runtime, trigger="automatic", settled=None):
        results = {i: SimpleNamespace(delivery=SimpleNamespace(id=i)) for i in ids if not i.startswith("wait")}
        settled([i for i in ids if i.startswith("wait")], [])  # waiting for a slot: settled, no result
        fast = [i for i in ids if i.startswith("fast")]
        await asyncio.sleep(0.01)
        settled(fast, [results[i] for i in fast])
        if "slow" in results:
            await asyncio.sleep(1.0)  # the slow receiver
            settled(["slow"], [results["slow"]])
        return list(results.values())

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    coalescer = batching.SendCoalescer(runtime=None, window=0.001, max_batch=10)
    first = asyncio.ensure_future(coalescer.attempt(["lone"]))  # in flight: the next jobs share a batch
    await asyncio.sleep(0)
    jobs = [asyncio.ensure_future(coalescer.attempt(group))
            for group in (["fast1", "wait1"], ["slow", "fast2"], ["fast3", "fast1"])]
    done, _ = await asyncio.wait(jobs, timeout=0.5)
    assert done == {jobs[0], jobs[2]}  # long before the slow receiver answers
    assert ids_of(jobs[0].result()) == ["fast1"] and ids_of(jobs[2].result()) == ["fast3", "fast1"]
    assert ids_of(await jobs[1]) == ["slow", "fast2"]
    await first
    assert coalescer._in_flight == 0
