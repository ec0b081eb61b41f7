"""`bench/throughput.py --pg-statements`: PostgreSQL's time per statement, per delivery. The claim and the
load come in several padded sizes; the report must count each as one statement and name it plainly."""

from __future__ import annotations

from bench.pg_statements import Statement, label, shape, summarize

CLAIM_8 = ('UPDATE "delivery" SET "status" = $1, "locked_until" = $2 WHERE "id" IN (SELECT "id" FROM "delivery" '
           'WHERE "id" IN ($3, $4, $5, $6, $7, $8, $9, $10) AND ("status" || $11) IN ($12, $13) '
           'FOR UPDATE SKIP LOCKED) RETURNING "id"')
CLAIM_2 = ('UPDATE "delivery" SET "status" = $1, "locked_until" = $2 WHERE "id" IN (SELECT "id" FROM "delivery" '
           'WHERE "id" IN ($3, $4) AND ("status" || $5) IN ($6, $7) \n  FOR UPDATE SKIP LOCKED) RETURNING "id"')
RECORD = ('WITH attempt AS (INSERT INTO "delivery_attempt" ("id","number") VALUES ($1,$2)) '
          'UPDATE "delivery" SET "status"=$3 WHERE "id"=$4')
LOAD = 'SELECT "delivery"."id","event"."payload" FROM "delivery" LEFT OUTER JOIN "event" ON 1=1 WHERE "id" IN ($1,$2)'


def test_padded_sizes_of_one_statement_have_one_shape() -> None:
    assert shape(CLAIM_8) == shape(CLAIM_2)
    assert shape(CLAIM_8) != shape(RECORD)


def test_labels_name_the_writes_in_order_and_not_the_row_lock() -> None:
    assert label(CLAIM_8) == "UPDATE delivery (status, locked_until)"
    assert label(RECORD) == "INSERT delivery_attempt + UPDATE delivery (status)"
    assert label('UPDATE "delivery" SET "a"=$1, "b"=$2, "c"=$3, "d"=$4 WHERE "id"=$5') == \
        "UPDATE delivery (a, b, c, ...)"
    assert label(LOAD) == "SELECT delivery"


def test_the_summary_is_per_delivery_and_merges_the_sizes() -> None:
    statements = [Statement(RECORD, 1000, 1000, 120.0), Statement(CLAIM_8, 10, 400, 30.0),
                  Statement(CLAIM_2, 20, 40, 10.0), Statement(LOAD, 30, 1000, 20.0), Statement("SELECT 1", 5, 5, 1.0)]
    lines = summarize(statements, deliveries=1000, top=2)
    assert lines[0].split() == ["0.120", "ms/delivery", "66%", "100.0", "calls/100", "deliveries", "1.0", "rows/call",
                                "INSERT", "delivery_attempt", "+", "UPDATE", "delivery", "(status)"]
    # the two claim sizes together: 40 ms, 30 calls, 440 rows
    assert lines[1].split()[:5] == ["0.040", "ms/delivery", "22%", "3.0", "calls/100"]
    assert "14.7 rows/call" in lines[1] and lines[1].endswith("UPDATE delivery (status, locked_until)")
    assert lines[2].startswith(" 0.181 ms/delivery in all (4 statement shapes; 0.021 in the others)")


def test_nothing_recorded_says_so() -> None:
    assert summarize([], deliveries=1000) == ["no statements recorded"]
