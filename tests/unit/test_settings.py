"""Settings: embedded defaults, and one clear message naming the variable when a value is wrong."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from config.kinds import Number, Whole
from config.settings import SettingsError, declarations, load_settings


def load(tmp_path: Path, **env: str) -> object:
    base = {"NEWSFLASH_VAR_DIR": str(tmp_path / "var")}
    base.update(env)
    return load_settings(environ=base, env_file=None)


def test_embedded_defaults_match_the_contract(tmp_path: Path) -> None:
    s = load_settings(environ={}, env_file=None)
    assert s.database_url == "sqlite:///var/newsflash.db"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url == s.redis_url
    assert s.public_origins == ("http://127.0.0.1:8000",)
    assert "fcm.googleapis.com" in s.push_hosts and "*.push.apple.com" in s.push_hosts
    assert s.allow_loopback_push is False
    assert [t.slug for t in s.topics] == ["breaking", "politics", "business", "sport"]
    assert [t.slug for t in s.topics if t.default] == ["breaking"]
    assert s.default_ttl_s == 3600
    assert s.alert_webhook_url is None


def test_broker_follows_redis_unless_set(tmp_path: Path) -> None:
    s = load_settings(environ={"NEWSFLASH_REDIS_URL": "redis://10.1.2.3:6380/2"}, env_file=None)
    assert s.broker_url == "redis://10.1.2.3:6380/2"
    s = load_settings(
        environ={"NEWSFLASH_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}, env_file=None
    )
    assert s.broker_url.startswith("amqp://")


def test_the_local_origin_follows_port_unless_set() -> None:
    # `PORT=8010 make run` serves the demo article on :8010: alert links to it must be accepted.
    s = load_settings(environ={"PORT": "8010"}, env_file=None)
    assert s.public_origins == ("http://127.0.0.1:8010",)
    assert s.api_url == "http://127.0.0.1:8010"
    s = load_settings(
        environ={"PORT": "8010", "NEWSFLASH_PUBLIC_ORIGINS": "https://news.example.com"},
        env_file=None,
    )
    assert s.public_origins == ("https://news.example.com",)


def test_postgres_url_gets_the_psycopg3_driver() -> None:
    s = load_settings(
        environ={"NEWSFLASH_DATABASE_URL": "postgresql://u@db/newsflash"}, env_file=None
    )
    assert s.database_url == "postgresql+psycopg://u@db/newsflash"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "NEWSFLASH_DATABASE_URL",
            "mysql://x/y",
            "NEWSFLASH_DATABASE_URL: expected a URL starting with",
        ),
        ("NEWSFLASH_DEFAULT_TTL", "0", "NEWSFLASH_DEFAULT_TTL: expected a whole number from 60"),
        ("NEWSFLASH_DEFAULT_TTL", "soon", "NEWSFLASH_DEFAULT_TTL"),
        (
            "NEWSFLASH_ALLOW_LOOPBACK_PUSH",
            "maybe",
            "NEWSFLASH_ALLOW_LOOPBACK_PUSH: expected on/off",
        ),
        ("NEWSFLASH_PUBLIC_ORIGINS", "http://news.example.com", "https origins"),
        ("NEWSFLASH_PUBLIC_ORIGINS", "https://news.example.com/path", "NEWSFLASH_PUBLIC_ORIGINS"),
        ("NEWSFLASH_TOPICS", "Breaking News", "NEWSFLASH_TOPICS"),
        ("NEWSFLASH_PUSH_HOSTS", "fcm.googleapis.com/x", "NEWSFLASH_PUSH_HOSTS"),
        (
            "NEWSFLASH_VAPID_SUBJECT",
            "admin@example.com",
            "NEWSFLASH_VAPID_SUBJECT: expected a mailto:",
        ),
        ("NEWSFLASH_NEWSROOM_TIMEZONE", "Mars/Olympus", "NEWSFLASH_NEWSROOM_TIMEZONE"),
        ("PORT", "http", "PORT: expected a TCP port"),
        ("NEWSFLASH_EVENT_LOOP", "trio", "NEWSFLASH_EVENT_LOOP: expected uvloop or asyncio"),
    ],
)
def test_malformed_values_name_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, **{variable: value})
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_key_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, NEWSFLASH_VAPID_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"))
    assert str(info.value).startswith("NEWSFLASH_VAPID_PRIVATE_KEY_FILE: expected a readable file")


def test_a_key_that_is_not_pem_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret = "super-secret-not-a-pem"
    with pytest.raises(SettingsError) as info:
        load(tmp_path, NEWSFLASH_VAPID_PRIVATE_KEY=secret)
    assert secret not in str(info.value)
    assert "NEWSFLASH_VAPID_PRIVATE_KEY" in str(info.value)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('# comment\nNEWSFLASH_DEFAULT_TTL=600\nexport NEWSFLASH_BATCH_SIZE="250"\n')
    s = load_settings(environ={"NEWSFLASH_BATCH_SIZE": "100"}, env_file=dotenv)
    assert s.default_ttl_s == 600
    assert s.batch_size == 100


def test_topics_setting_parses_names_and_default() -> None:
    s = load_settings(
        environ={"NEWSFLASH_TOPICS": "local:Local news,breaking:Breaking:default"}, env_file=None
    )
    assert [(t.slug, t.name, t.default) for t in s.topics] == [
        ("local", "Local news", False),
        ("breaking", "Breaking", True),
    ]


def test_settings_are_frozen() -> None:
    s = load_settings(environ={}, env_file=None)
    with pytest.raises(AttributeError):
        s.batch_size = 1  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    s = load_settings(environ={"NEWSFLASH_SECRET_KEY": "hunter2-hunter2-hunter2"}, env_file=None)
    assert "hunter2" not in repr(s)


def test_event_loop_is_uvloop_where_installed_and_asyncio_on_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load(tmp_path).event_loop == "uvloop"
    assert load(tmp_path, NEWSFLASH_EVENT_LOOP="asyncio").event_loop == "asyncio"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "uvloop" else real_find_spec(name, *a),
    )
    assert load(tmp_path).event_loop == "asyncio"
    with pytest.raises(SettingsError) as info:
        load(tmp_path, NEWSFLASH_EVENT_LOOP="uvloop")
    assert "NEWSFLASH_EVENT_LOOP: expected asyncio, or install uvloop" in str(info.value)


def test_a_secret_given_inline_and_as_a_file_is_refused(tmp_path: Path) -> None:
    """One of the two would be silently ignored: say so instead, naming both."""
    key_file = tmp_path / "secret"
    key_file.write_text("from-the-file-0123456789")
    with pytest.raises(SettingsError) as info:
        load(
            tmp_path,
            NEWSFLASH_SECRET_KEY="inline-secret-0123456789",
            NEWSFLASH_SECRET_KEY_FILE=str(key_file),
        )
    assert str(info.value).startswith("NEWSFLASH_SECRET_KEY_FILE: expected unset when")
    assert "NEWSFLASH_SECRET_KEY is set" in str(info.value)
    assert load(tmp_path, NEWSFLASH_SECRET_KEY_FILE=str(key_file)).secret_key.startswith("from-")


def test_dotenv_is_optional(tmp_path: Path) -> None:
    s = load_settings(environ={}, env_file=tmp_path / "no-such.env")
    assert s.batch_size == 1000


@pytest.mark.parametrize("limit", ["30 per minute", "10/second; 500/hour", "5 per 2 minutes"])
def test_rate_limits_in_every_form_flask_limiter_reads(tmp_path: Path, limit: str) -> None:
    assert load(tmp_path, NEWSFLASH_RATE_LIMIT_LOGIN=limit).rate_limit_login == limit


def test_webhook_secret_with_or_without_its_prefix(tmp_path: Path) -> None:
    bare = "dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tzLTMyYnl0ZXM="
    assert load(tmp_path, NEWSFLASH_CMS_WEBHOOK_SECRET=bare).cms_webhook_secret == bare
    assert load(tmp_path, NEWSFLASH_CMS_WEBHOOK_SECRET="whsec_" + bare).cms_webhook_secret


def test_prometheus_multiproc_dir_wins_and_is_named_when_wrong(tmp_path: Path) -> None:
    s = load(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    assert s.metrics_dir == tmp_path / "prom"
    with pytest.raises(SettingsError) as info:
        load(tmp_path, PROMETHEUS_MULTIPROC_DIR="/dev/null")
    assert str(info.value).startswith("PROMETHEUS_MULTIPROC_DIR: expected a directory")


def test_session_settings_default_and_bounds(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert (s.session_lifetime_s, s.session_idle_s) == (43200, 7200)
    with pytest.raises(SettingsError, match="NEWSFLASH_SESSION_IDLE_S: expected a whole number"):
        load(tmp_path, NEWSFLASH_SESSION_IDLE_S="43201")


def test_dotenv_values_are_taken_as_written(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("NEWSFLASH_SECRET_KEY=pa${HOME}ss-0123456789\n")
    assert load_settings(environ={}, env_file=dotenv).secret_key == "pa${HOME}ss-0123456789"


_FULL_WIDTH = {ord(c): ord(c) + 0xFEE0 for c in "0123456789."}  # U+FF10.. and U+FF0E


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSFLASH_DEFAULT_TTL", "\uff11\uff12\uff10"),  # full-width 120: int() took it
        ("NEWSFLASH_DEFAULT_TTL", "1_200"),  # int() reads the underscore as a separator
        ("NEWSFLASH_DEFAULT_TTL", "+120"),
        ("NEWSFLASH_DEFAULT_TTL", "\u0661\u0662\u0660"),  # Arabic-Indic 120
        ("PORT", "\uff18\uff10\uff10\uff10"),
        ("NEWSFLASH_CONNECT_TIMEOUT_S", "\uff15"),
        ("NEWSFLASH_CONNECT_TIMEOUT_S", "1_0"),
        ("NEWSFLASH_CONNECT_TIMEOUT_S", "+5"),
        ("NEWSFLASH_CONNECT_TIMEOUT_S", "\u0665.\u0665"),
    ],
)
def test_numbers_are_ascii_digits_only(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, **{variable: value})
    assert str(info.value).startswith(f"{variable}: expected"), str(info.value)
    assert "\n" not in str(info.value)


def test_every_whole_and_number_setting_refuses_non_ascii_digits_and_takes_ascii() -> None:
    numeric = [(d.env, d.kind) for d in declarations() if isinstance(d.kind, Whole | Number)]
    assert len(numeric) > 40
    for env, kind in numeric:
        low = kind.show(kind.low) if isinstance(kind, Number) else str(kind.low)
        assert kind.parse(low) == kind.low, env
        for text in (low.translate(_FULL_WIDTH), f"{low}_0", f"+{low}"):
            with pytest.raises(ValueError):
                kind.parse(text)
    assert Number(0, 100).parse("2.5") == 2.5 and Number(0, 100).parse(".5") == 0.5
    assert Number(0, 100).parse("1e1") == 10.0 and Number(0, 100).parse("7.") == 7.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("sqlite:///var/newsflash.db", "sqlite:///var/newsflash.db"),
        (
            "postgresql+psycopg://nf:secret@127.0.0.1:5432/nf",
            "postgresql+psycopg://nf:****@127.0.0.1:5432/nf",
        ),
        (
            "postgresql+psycopg://127.0.0.1/nf?sslmode=require",
            "postgresql+psycopg://127.0.0.1/nf?sslmode=require",
        ),
    ],
)
def test_a_database_url_is_shown_as_set_with_only_its_password_masked(url: str, shown: str) -> None:
    """`newsflash settings` printed sqlite:////tmp/x.db as sqlite://tmp/x.db (urlunsplit drops
    the empty host), a different file than the one in use."""
    from config.kinds import DatabaseUrl

    assert DatabaseUrl().show(url) == shown
