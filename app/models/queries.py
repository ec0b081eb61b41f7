"""The SQL Tortoise would send for a query, for callers that run it themselves (wrapped, or kept and reused)."""

from __future__ import annotations

from typing import Any

from tortoise.queryset import AwaitableQuery


def parameterized(query: AwaitableQuery) -> tuple[str, list[Any]]:
    """The query's SQL, with its database chosen, and its parameters in the order of their marks."""
    query._choose_db_if_not_chosen()
    query._make_query()
    sql, params = query.query.get_parameterized_sql()
    return sql, list(params)
