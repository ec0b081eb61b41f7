"""The cyclic garbage collector set for a long-running server process."""

from __future__ import annotations

import gc

# Young-generation collections: every 700 allocations by default, which a process making a few hundred
# objects per delivery runs thousands of times a second, each walking what the last ones left. Most
# of those objects are freed by reference counting anyway; cycles wait a little longer.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Called once start-up is done. What it made (modules, the GraphQL schema, the ORM's models, the
    connections) lives as long as the process: frozen, full collections stop walking it, which requests
    that build many objects (a page of 100 deliveries) otherwise spend about a third of their CPU on."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
