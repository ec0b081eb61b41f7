"""Identifiers: prefixed, time-sortable, and increasing within a process even in one millisecond."""

from __future__ import annotations

from app.core import ids


def test_ids_made_in_a_row_sort_in_the_order_they_were_made():
    made = [ids.delivery_id() for _ in range(5000)]  # many share a millisecond
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(i.startswith("del_") and len(i) == 30 for i in made)
    assert ids.prefix_of(made[0]) == "del"


def test_the_time_part_is_the_clock_of_the_moment(monkeypatch):
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_700_000_000_123 * 1_000_000)
    monkeypatch.setattr(ids, "_last", [0, 0])
    first = ids.event_id()
    assert first[4:14] == ids._encode(1_700_000_000_123, 10)
    second = ids.event_id()  # the same millisecond: the random part goes up by one
    assert second[:14] == first[:14] and second > first
