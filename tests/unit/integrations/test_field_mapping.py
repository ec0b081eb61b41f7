"""Payload paths: validation, resolving against a delivery (pseudo-paths included), text values."""

from __future__ import annotations

import re

import pytest

from app.integrations.field_mapping import (
    PSEUDO_PATHS,
    as_text,
    resolve_path,
    unknown_fields,
    validate_mapping,
    validate_path,
)
from tests.unit.integrations.helpers import make_ctx

PAYLOAD = {"post": {"author": {"email": "ada@example.com"}}, "items": [{"name": "first"}, {"name": "second"}]}


def test_pseudo_paths_resolve_to_the_delivery():
    ctx = make_ctx({}, PAYLOAD, event_type="form.submitted", form_slug="contact")
    assert {path: resolve_path(ctx, path) for path in sorted(PSEUDO_PATHS)} == {
        "$delivery_id": "del_1",
        "$event": "form.submitted",
        "$form": "contact",
        "$timestamp": "2026-01-02T03:04:05Z",
        "$workspace": "acme",
    }
    assert resolve_path(make_ctx({}, PAYLOAD), "$form") is None  # not a form's event
    assert resolve_path(ctx, "$nope") is None


def test_dotted_paths_and_list_indexes():
    ctx = make_ctx({}, PAYLOAD)
    assert resolve_path(ctx, "post.author.email") == "ada@example.com"
    assert resolve_path(ctx, "items.1.name") == "second"
    assert resolve_path(ctx, "post.author") == {"email": "ada@example.com"}
    for absent in ("post.editor.email", "items.2.name", "items.x", "post.author.email.domain"):
        assert resolve_path(ctx, absent) is None
    assert resolve_path(make_ctx({}, ["a", "b"]), "1") == "b"


def test_validate_path():
    assert validate_path("post.author.email", "p") is None
    assert validate_path("$timestamp", "p") is None
    assert validate_path(None, "p", required=False) is None
    codes = {
        value: validate_path(value, "p").code
        for value in ("", None, 3, "a..b", "a b", "$nope", "x" * 201)
    }
    assert codes == {
        "": "REQUIRED",
        None: "REQUIRED",
        3: "INVALID",
        "a..b": "INVALID_PATH",
        "a b": "INVALID_PATH",
        "$nope": "INVALID_PATH",
        "x" * 201: "INVALID_PATH",
    }
    assert "$delivery_id, $event, $form, $timestamp, $workspace" in validate_path("$nope", "p").message


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, None), (True, "true"), (False, "false"), (5, "5"), (1.5, "1.5"), ("x", "x"),
     ({"a": [1]}, '{"a":[1]}'), ([1, "b"], '[1,"b"]')],
)
def test_as_text(value, text):
    assert as_text(value) == text


def test_validate_mapping_and_unknown_fields():
    key_re = re.compile(r"^[a-z]+$")
    clean, errors = validate_mapping({"email": "fields.email", "name": "a..b", "Bad": "x"}, "config.mapping",
                                     key_re=key_re, required_keys=("email", "phone"))
    assert clean == {"email": "fields.email"}
    assert {(e.field, e.code) for e in errors} == {
        ("config.mapping.name", "INVALID_PATH"),
        ("config.mapping.Bad", "INVALID"),
        ("config.mapping.phone", "REQUIRED"),
    }
    _, too_many = validate_mapping({c: "x" for c in "abc"}, "m", key_re=key_re, max_items=2)
    assert [(e.field, e.code) for e in too_many] == [("m", "TOO_LONG")]
    assert [(e.field, e.code) for e in validate_mapping([], "m", key_re=key_re)[1]] == [("m", "INVALID")]
    assert [(e.field, e.code) for e in unknown_fields({"extra": 1})] == [("config.extra", "UNKNOWN_FIELD")]
