"""Which budget a request draws on: a mutation of nothing but eventPublish is a publish."""

from __future__ import annotations

import pytest

from app.web.operations import GENERAL, PUBLISH, budget_for


@pytest.mark.parametrize("query, operation_name, budget", [
    ("mutation { eventPublish(input: {}) { created } }", None, PUBLISH),
    ("mutation P($i: EventPublishInput!) { a: eventPublish(input: $i) { created } b: eventPublish(input: $i) "
     "{ created } }", "P", PUBLISH),
    ("mutation { eventPublish(input: {}) { created } workspaceCreate(input: {}) { errors { code } } }", None,
     GENERAL),
    ("mutation($i: EventsPublishInput!) { eventsPublish(input: $i) { errors { code } } }", None, PUBLISH),
    ("mutation { eventsPublish(input: {}) { errors { code } } eventPublish(input: {}) { created } }", None, PUBLISH),
    ("query { eventPublish }", None, GENERAL),
    ("mutation A { eventPublish { a } } query B { viewer { id } }", "A", PUBLISH),
    ("mutation A { eventPublish { a } } query B { viewer { id } }", "B", GENERAL),
    ("mutation A { eventPublish { a } } query B { viewer { id } }", None, GENERAL),
    ("mutation { eventPublish(", None, GENERAL),
    ("{ viewer { id } }", None, GENERAL),
    ("", None, GENERAL),
    (None, None, GENERAL),
])
def test_budget_for(query, operation_name, budget):
    assert budget_for(query, operation_name) == budget


def test_a_long_document_is_classified_without_the_cache():
    long = "mutation { eventPublish(input: {}) { created } }" + " " * 20_000
    assert budget_for(long, None) == PUBLISH
    tokens = "mutation { " + "eventPublish { a } " * 5000 + "}"  # past the token cap: not parsed
    assert budget_for(tokens, None) == GENERAL
