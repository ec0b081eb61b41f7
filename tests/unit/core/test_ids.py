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


def test_an_id_spells_its_time_and_random_part_in_crockford_base32():
    cases = [(0, 0), (1, 1), (1_700_000_000_123, 12345), ((1 << 50) - 1, (1 << 80) - 1), (1 << 49, 1 << 79)]
    for millis, random_part in cases:
        assert ids._encode_id(millis, random_part) == ids._encode(millis, 10) + ids._encode(random_part, 16)
    assert ids._encode_id(0, 0) == "0" * 26 and ids._encode_id((1 << 50) - 1, (1 << 80) - 1) == "Z" * 26
    assert ids._encode_id(0, 31) == "0" * 25 + "Z" and ids._encode_id(1, 0) == "0" * 9 + "1" + "0" * 16
