"""Refusing U+0000 in any input, up front.

PostgreSQL's text and jsonb cannot hold the NUL character: a name, slug, id, payload or config
string carrying one failed in the database wherever it first reached a query, as a masked internal
error. A request with NUL anywhere in its variables or string literals is refused before validation
as BAD_USER_INPUT instead, the same on every database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import BREAK, DocumentNode, StringValueNode, Visitor, visit
from strawberry.extensions import SchemaExtension

from app.schema.errors import BadInput

NUL = "\x00"


def _has_nul(value: Any) -> bool:
    stack = [value]  # no recursion: variables may nest as deep as the JSON parser allows
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _NulLiteral(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_args) -> object:
        if NUL in node.value:
            self.found = True
            return BREAK
        return None


def _document_has_nul(query: str | None, document: DocumentNode | None) -> bool:
    # A literal can only hold NUL through an escape (\u0000, \u{0}); most texts have no \u at all.
    if document is None or not query or "\\u" not in query:
        return False
    finder = _NulLiteral()
    visit(document, finder)
    return finder.found


class RefuseNulCharacters(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if _has_nul(context.variables) or _document_has_nul(context.query, context.graphql_document):
            # Set before validation runs: strawberry then skips it and answers with this error.
            context.pre_execution_errors = [BadInput("text may not contain the NUL character (U+0000)")]
        yield
