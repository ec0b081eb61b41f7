"""Where PostgreSQL's time goes, statement by statement, per delivery (`bench/throughput.py --pg-statements`).

CPU per process says how much PostgreSQL costs a delivery; this says which statements it is spent on,
from `pg_stat_statements`: each statement's execution time, calls and rows over the throughput phase,
divided by the deliveries made. Statements that differ only in the length of an `IN ($1, $2, ...)` list
(the claim and the load, padded to a few sizes) count as one.

The module has to be loaded when PostgreSQL starts, which a benchmark cannot do for the server it is
given; on a machine of your own (it restarts PostgreSQL):

    psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    pg_ctlcluster 15 main restart

Execution time is not CPU time: on a busy machine it includes the time a backend waited for a core.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

ENABLE_HINT = ("pg_stat_statements is not loaded: ALTER SYSTEM SET shared_preload_libraries = "
               "'pg_stat_statements', then restart PostgreSQL (see bench/pg_statements.py)")

_THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"
_MARK_LIST = re.compile(r"\(\$\d+(?:\s*,\s*\$\d+)*\)")
_MARK = re.compile(r"\$\d+")
_SPACE = re.compile(r"\s+")
_SET = re.compile(r"\s+SET\s+(.*?)(?:\s+FROM\s|\s+WHERE\s|\s+RETURNING\s|$)", re.I)
_TABLE = r'"?(\w+)"?'
_VERBS = ((re.compile(rf"\bINSERT\s+INTO\s+{_TABLE}", re.I), "INSERT {}"),
          (re.compile(rf"(?<!FOR )(?<!KEY )\bUPDATE\s+{_TABLE}", re.I), "UPDATE {}"),  # not FOR UPDATE
          (re.compile(rf"\bDELETE\s+FROM\s+{_TABLE}", re.I), "DELETE {}"),
          (re.compile(rf"\bFROM\s+{_TABLE}", re.I), "SELECT {}"))


@dataclass
class Statement:
    query: str
    calls: int
    rows: int
    exec_ms: float


def shape(query: str) -> str:
    """The query with its whitespace collapsed, every list of parameter marks written `(...)` and every other
    mark `$`: the claim padded to 64 ids numbers its later parameters differently from the one padded to 8."""
    return _MARK.sub("$", _MARK_LIST.sub("(...)", _SPACE.sub(" ", query.strip())))


def _set_columns(text: str, start: int) -> str:
    """` (a, b, c)`: the columns an UPDATE starting at `start` sets, the first three of them."""
    found = _SET.search(text, start)
    if found is None:
        return ""
    names = re.findall(r'"?(\w+)"?\s*=', found.group(1))
    return f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""


def label(query: str) -> str:
    """What a statement does, in a few words: its writes in the order written (a WITH's first; an UPDATE
    with the first columns it sets), else the table it reads first: `INSERT event + INSERT delivery`,
    `UPDATE delivery (status, locked_until, updated_at)`, `SELECT delivery`."""
    text = shape(query)
    found = []
    for pattern, form in _VERBS[:3]:
        found += [(m.start(), form.format(m.group(1)) + (_set_columns(text, m.end()) if "UPDATE" in form else ""))
                  for m in pattern.finditer(text)]
    if not found:
        select = _VERBS[3][0].search(text)
        return _VERBS[3][1].format(select.group(1)) if select else text[:40]
    return " + ".join(words for _, words in sorted(found))


def summarize(statements: list[Statement], deliveries: int, top: int = 6) -> list[str]:
    """Report lines: the `top` statement shapes by execution time, each as ms per delivery, share of the
    total, calls per 100 deliveries and rows per call; then the total."""
    grouped: dict[str, Statement] = {}
    for s in statements:
        key = shape(s.query)
        seen = grouped.setdefault(key, Statement(key, 0, 0, 0.0))
        seen.calls += s.calls
        seen.rows += s.rows
        seen.exec_ms += s.exec_ms
    ranked = sorted(grouped.values(), key=lambda s: s.exec_ms, reverse=True)
    total = sum(s.exec_ms for s in ranked)
    if not ranked or deliveries <= 0 or total <= 0:
        return ["no statements recorded"]
    lines = []
    for s in ranked[:top]:
        lines.append(f"{s.exec_ms / deliveries:6.3f} ms/delivery {100 * s.exec_ms / total:4.0f}%  "
                     f"{100 * s.calls / deliveries:7.1f} calls/100 deliveries  {s.rows / max(s.calls, 1):6.1f} "
                     f"rows/call  {label(s.query)}")
    rest = sum(s.exec_ms for s in ranked[top:])
    lines.append(f"{total / deliveries:6.3f} ms/delivery in all ({len(ranked)} statement shapes; "
                 f"{rest / deliveries:.3f} in the others)")
    return lines


async def enable(db: asyncpg.Connection) -> bool:
    """Makes the view readable in `db`'s database; False when the server has not loaded the module."""
    loaded = await db.fetchval("SELECT current_setting('shared_preload_libraries')")
    if "pg_stat_statements" not in (loaded or ""):
        return False
    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


async def reset(db: asyncpg.Connection) -> None:
    """Forgets what this database's statements have cost so far (other databases keep theirs)."""
    await db.execute(f"SELECT pg_stat_statements_reset(0, {_THIS_DATABASE}, 0)")


async def read(db: asyncpg.Connection) -> list[Statement]:
    rows = await db.fetch("SELECT query, calls, rows, total_exec_time FROM pg_stat_statements "
                          f"WHERE dbid = {_THIS_DATABASE}")
    return [Statement(r["query"], r["calls"], r["rows"], r["total_exec_time"]) for r in rows]
