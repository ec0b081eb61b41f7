"""The one shape every use-case answers with: what it made or changed, or why it could not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.core.errors import FieldError

T = TypeVar("T")


@dataclass
class Done(Generic[T]):
    value: T | None = None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @classmethod
    def refused(cls, *errors: FieldError) -> Done[T]:
        return cls(value=None, errors=list(errors))
