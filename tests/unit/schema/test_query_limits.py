"""The depth and alias limits hold on every request, also once other texts are known valid (the
validation cache skips validation for those only)."""

from __future__ import annotations

from app.config import Settings
from app.schema import build_schema

ALIASES = "query { a: __typename b: __typename c: __typename }"
DEEP = "query { viewer { user { id } } }"


async def test_depth_and_alias_limits_refuse_every_time():
    schema = build_schema(Settings(max_query_depth=1, max_aliases=2))
    assert not (await schema.execute("query { a: __typename b: __typename }")).errors
    assert not (await schema.execute("query { a: __typename b: __typename }")).errors  # known now
    for _ in range(2):
        aliases = await schema.execute(ALIASES)
        assert aliases.errors and "aliases" in aliases.errors[0].message
        deep = await schema.execute(DEEP)
        assert deep.errors and "exceeds maximum operation depth" in deep.errors[0].message


async def test_the_limits_are_the_schemas_own():
    roomy = build_schema(Settings(max_query_depth=20, max_aliases=5))
    assert not (await roomy.execute(ALIASES)).errors
    # Validated and run: the only error is the resolver's (no request context here), none of validation's.
    assert all(error.path for error in (await roomy.execute(DEEP)).errors or ())
