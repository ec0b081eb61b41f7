"""Settings: list-valued HOOKYARD_* variables are parsed once, into typed tuples, with readable errors."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from app.config import DEFAULT_RETRY_SCHEDULE, Settings, parse_networks, parse_schedule

LIST_VARIABLES = ("HOOKYARD_ALLOWED_NETWORKS", "HOOKYARD_RETRY_SCHEDULE", "HOOKYARD_ALLOWED_ORIGINS")


@pytest.fixture
def env(monkeypatch):
    """Sets HOOKYARD_* variables for one test; none of the list variables leak in from outside."""
    for name in LIST_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"HOOKYARD_{name.upper()}", value)

    return set_


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, DEFAULT_RETRY_SCHEDULE),
        ("", DEFAULT_RETRY_SCHEDULE),
        ("   ", DEFAULT_RETRY_SCHEDULE),
        ("1", (1.0,)),
        ("0.1, 0.2,0.5", (0.1, 0.2, 0.5)),
        ("0,5,300", (0.0, 5.0, 300.0)),
    ],
)
def test_parse_schedule(text: str | None, expected: tuple[float, ...]) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1,,2", "entry 2 ('')"),
        ("1,abc", "entry 2 ('abc')"),
        ("-1", "non-negative"),
        ("1,inf", "finite"),
        ("nan", "finite"),
        ("5s", "not a number"),
    ],
)
def test_parse_schedule_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert fragment in str(info.value)


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks("  ,  ") == ()
    assert list(parse_networks("127.0.0.0/8, ::1/128,10.1.2.3")) == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.1.2.3/32"),
    ]
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks("127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValueError, match="'localhost'"):
        parse_networks("localhost")


def test_list_settings_from_the_environment_are_typed_tuples(env) -> None:
    env(allowed_networks="10.0.0.0/8, ::1/128,192.168.1.7", retry_schedule="1, 2.5,60",
        allowed_origins="https://app.example.com, http://localhost:3000")
    settings = Settings()

    assert settings.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"),
                                         ipaddress.ip_network("192.168.1.7/32"))
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in settings.allowed_networks)
    assert settings.retry_schedule == (1.0, 2.5, 60.0)
    assert all(type(delay) is float for delay in settings.retry_schedule)
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:3000")


def test_unset_or_blank_list_settings_take_their_defaults(env) -> None:
    settings = Settings()
    assert settings.allowed_networks == ()
    assert settings.retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert settings.allowed_origins == ()

    env(allowed_networks=" ", retry_schedule="", allowed_origins=" , ")
    settings = Settings()
    assert (settings.allowed_networks, settings.retry_schedule, settings.allowed_origins) == (
        (), DEFAULT_RETRY_SCHEDULE, ())


def test_typed_values_pass_through_unchanged(env) -> None:
    """Settings built in code (tests, the CLI) may hand over already parsed values."""
    network = ipaddress.ip_network("127.0.0.0/8")
    settings = Settings(allowed_networks=(network,), retry_schedule=[1, 2], allowed_origins=["https://a.example"])
    assert settings.allowed_networks == (network,)
    assert settings.retry_schedule == (1.0, 2.0)
    assert settings.allowed_origins == ("https://a.example",)
    # Parsed values validated again (a copy of the settings) stay as they are.
    again = Settings(**settings.model_dump())
    assert (again.allowed_networks, again.retry_schedule, again.allowed_origins) == (
        settings.allowed_networks, settings.retry_schedule, settings.allowed_origins)


@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        ("allowed_networks", "10.0.0.0/8,localhost", ("allowed_networks", "'localhost' is not a CIDR network")),
        ("allowed_networks", "10.0.0.0/33", ("allowed_networks", "'10.0.0.0/33'")),
        ("retry_schedule", "5,soon", ("retry_schedule", "entry 2 ('soon') is not a number of seconds")),
        ("retry_schedule", "5,-1", ("retry_schedule", "entry 2 ('-1') must be a finite, non-negative")),
        ("retry_schedule", "5,,30", ("retry_schedule", "entry 2 ('')")),
    ],
)
def test_bad_list_settings_fail_at_start_up_naming_the_setting_and_the_entry(env, variable, value, fragments) -> None:
    env(**{variable: value})
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


def test_the_default_database_lives_in_the_data_dir(env, monkeypatch, tmp_path) -> None:
    """HOOKYARD_DATA_DIR is where the SQLite file lives unless HOOKYARD_DATABASE_URL says otherwise."""
    monkeypatch.delenv("HOOKYARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("HOOKYARD_DATA_DIR", raising=False)
    assert Settings().database_url == "sqlite://data/hookyard.db"

    env(data_dir=str(tmp_path / "state"))
    settings = Settings()
    assert settings.data_dir == tmp_path / "state"
    assert settings.database_url == f"sqlite://{tmp_path / 'state' / 'hookyard.db'}"

    env(database_url=" ")  # blank is unset
    assert Settings().database_url == f"sqlite://{tmp_path / 'state' / 'hookyard.db'}"

    env(database_url="postgres://hookyard@db:5432/hookyard")
    assert Settings().database_url == "postgres://hookyard@db:5432/hookyard"
    assert Settings(data_dir=tmp_path, database_url="sqlite://:memory:").database_url == "sqlite://:memory:"


def test_the_database_in_the_data_dir_is_where_tortoise_opens_it(env, monkeypatch, tmp_path) -> None:
    from app.models.database import tortoise_config

    monkeypatch.delenv("HOOKYARD_DATABASE_URL", raising=False)
    env(data_dir=str(tmp_path / "d"))
    config = tortoise_config(Settings())
    assert config["connections"]["default"] == f"sqlite://{tmp_path / 'd' / 'hookyard.db'}"
    assert (tmp_path / "d").is_dir()  # made for the SQLite file
