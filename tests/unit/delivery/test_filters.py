import pytest

from app.delivery.filters import EVENT_NAME_RE, matches, validate_event_filter


@pytest.mark.parametrize(
    "name",
    ["session.completed", "sync_job_run:created", "integration.delivery_failed", "a", "a1.b2:c_3", "x" * 100],
)
def test_valid_event_names(name: str) -> None:
    assert EVENT_NAME_RE.fullmatch(name)
    assert validate_event_filter(name) is None


@pytest.mark.parametrize("pattern", ["*", "session.*", "sync_job_run:*", "integration.delivery.*"])
def test_valid_wildcards(pattern: str) -> None:
    assert validate_event_filter(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("sess*", "'*'"),
        ("*.completed", "'*'"),
        ("session.*.x", "'*'"),
        ("**", "'*'"),
        (".*", "empty"),
        ("a..b", "segments"),
        (".a", "segments"),
        ("a.", "segments"),
        ("a.b:", "segments"),
        ("Session.completed", "lowercase"),
        ("session completed", "spaces"),
        (" session", "spaces"),
        ("session-completed", "segments"),
        ("session/completed", "segments"),
        ("x" * 101, "longer than 100"),
        ("Session.*", "lowercase"),
        ("a..b.*", "segments"),
    ],
)
def test_invalid_filters_explain_the_problem(pattern: str, fragment: str) -> None:
    error = validate_event_filter(pattern)
    assert error is not None
    assert fragment in error


@pytest.mark.parametrize(
    ("filters", "event", "expected"),
    [
        (["*"], "anything.at_all", True),
        (["session.completed"], "session.completed", True),
        (["session.completed"], "session.started", False),
        (["session.*"], "session.completed", True),
        (["session.*"], "session.x.y", True),
        (["session.*"], "session", False),
        (["session.*"], "sessions.x", False),
        (["session.*"], "session:created", False),
        (["sync_job_run:*"], "sync_job_run:created", True),
        (["sync_job_run:*"], "sync_job_run", False),
        (["a.b", "c.*"], "c.d", True),
        (["a.b", "c.*"], "x.y", False),
        ([], "session.completed", False),
    ],
)
def test_matches(filters: list[str], event: str, expected: bool) -> None:
    assert matches(filters, event) is expected

