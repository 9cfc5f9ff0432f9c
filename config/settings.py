"""Settings: one frozen object built once per process from NEWSFLASH_* variables (and .env)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREFIX: Final = "NEWSFLASH_"

DEFAULT_TOPICS: Final = (
    "breaking:Breaking news:default,politics:Politics,business:Business,sport:Sport"
)
DEFAULT_PUSH_HOSTS: Final = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)
MAX_TTL_S: Final = 4 * 7 * 24 * 3600


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what is expected."""

    def __init__(self, variable: str, expected: str, got: str | None = None) -> None:
        self.variable = variable
        self.expected = expected
        shown = "" if got is None else f" (got {got!r})"
        super().__init__(f"{variable}: expected {expected}{shown}")


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str
    default: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded (single machine) defaults."""

    database_url: str = "sqlite:///var/newsflash.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = "redis://127.0.0.1:6379/0"
    var_dir: Path = Path("var")
    vapid_private_key_pem: str = field(default="", repr=False)
    vapid_private_key_file: Path | None = None
    vapid_subject: str = ""
    secret_key: str = field(default="", repr=False)
    public_origins: tuple[str, ...] = ("http://127.0.0.1:8000",)
    push_hosts: tuple[str, ...] = tuple(DEFAULT_PUSH_HOSTS.split(","))
    allow_loopback_push: bool = False
    topics: tuple[Topic, ...] = (
        Topic("breaking", "Breaking news", True),
        Topic("politics", "Politics"),
        Topic("business", "Business"),
        Topic("sport", "Sport"),
    )
    default_ttl_s: int = 3600
    cms_webhook_secret: str = field(default="", repr=False)
    alert_webhook_url: str | None = None
    # Delivery tuning (capacity planning in the README).
    batch_size: int = 1000
    concurrency_per_process: int = 100
    concurrency_per_host: int = 100
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    request_deadline_s: float = 15.0
    retry_max_attempts: int = 6
    retry_base_s: float = 10.0
    retry_cap_s: float = 3600.0
    stale_after_s: float = 60.0
    breaker_open_s: float = 300.0
    # The delivery workers' loop: "uvloop" (load_settings' default where installed) or "asyncio".
    event_loop: str = "asyncio"
    task_time_limit_s: int = 300
    visibility_timeout_s: int = 3600
    # Reader and newsroom.
    prompt_title: str = "Be the first to know."
    prompt_body: str = "Get breaking news alerts from us."
    prompt_accept: str = "Yes, Thanks"
    prompt_dismiss: str = "Not now"
    prompt_reask_days: int = 7
    newsroom_timezone: str = "Africa/Nairobi"
    undo_window_s: int = 10
    subscription_max_age_days: int = 180
    rate_limit_subscribe: str = "30 per minute"
    rate_limit_login: str = "10 per minute"
    metrics_token: str | None = field(default=None, repr=False)
    push_ca_file: str | None = None  # extra CA for TLS push stand-ins in tests and benchmarks
    worker_concurrency: int = 2
    port: int = 8000
    api_url: str = "http://127.0.0.1:8000"
    api_token: str | None = field(default=None, repr=False)
    proxy_hops: int = 0  # reverse proxies in front of the web process (X-Forwarded-For trust)
    # The web server (service/server.py): threads per process only ever see whole requests; a
    # request must arrive within web_read_timeout_s of its first byte, an idle connection is
    # closed after web_idle_timeout_s, and one process holds at most web_connection_limit.
    web_threads: int = 8
    web_read_timeout_s: float = 10.0
    web_idle_timeout_s: float = 20.0
    web_connection_limit: int = 1000
    log_level: str = "INFO"
    log_json: bool = True
    # Ops: Prometheus multiprocess files, the /ops cache and the alarm thresholds.
    metrics_dir: Path = Path("var/metrics")
    ops_cache_s: float = 2.0
    inspect_timeout_s: float = 1.0
    alarm_interval_s: float = 5.0
    alarm_stall_s: float = 60.0
    alarm_pending_s: float = 120.0
    alarm_for_s: float = 10.0

    @property
    def topic_slugs(self) -> frozenset[str]:
        return frozenset(t.slug for t in self.topics)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(("redis://", "rediss://", "redis+socket://"))

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.newsroom_timezone)


def _read_env_file(path: Path) -> dict[str, str]:
    """A minimal .env reader (KEY=VALUE, # comments, optional quotes); the process env wins."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


class _Reader:
    """Typed access to the NEWSFLASH_* variables with errors naming the variable."""

    def __init__(self, env: Mapping[str, str], asked: set[str], missing_files_ok: bool) -> None:
        self.env = env
        self.asked = asked
        self.missing_files_ok = missing_files_ok

    def raw(self, name: str) -> str | None:
        self.asked.add(PREFIX + name)
        value = self.env.get(PREFIX + name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def whole(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(
                PREFIX + name, f"a whole number from {low} to {high}", value
            ) from None
        if not low <= number <= high:
            raise SettingsError(PREFIX + name, f"a whole number from {low} to {high}", value)
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(PREFIX + name, f"a number from {low} to {high}", value) from None
        if not low <= number <= high:
            raise SettingsError(PREFIX + name, f"a number from {low} to {high}", value)
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(PREFIX + name, "on/off (1, true, yes, on / 0, false, no, off)", value)

    def secret(self, name: str, var_dir: Path, default_file: str | None) -> tuple[str, Path | None]:
        """A secret from NAME, else from the file NAME_FILE, else from var/<default_file>."""
        self.asked.add(PREFIX + name + "_FILE")
        value = self.raw(name)
        if value is not None:
            return value, None
        file_value = self.raw(name + "_FILE")
        if file_value is not None:
            path = Path(file_value)
            variable = PREFIX + name + "_FILE"
        elif default_file is not None:
            path = var_dir / default_file
            if not path.exists():
                return "", path
            variable = PREFIX + name + "_FILE (default " + str(path) + ")"
        else:
            return "", None
        if self.missing_files_ok and not path.exists():
            return "", path
        try:
            return path.read_text(encoding="utf-8").strip(), path
        except OSError as exc:
            raise SettingsError(variable, "a readable file", f"{path}: {exc.strerror}") from None


def _parse_origin(variable: str, text: str) -> str:
    parts = urlsplit(text.strip())
    expected = "origins like https://news.example.com (comma separated)"
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise SettingsError(variable, expected, text)
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise SettingsError(variable, "https origins (http only for 127.0.0.1/localhost)", text)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9-]+\.)+[a-z0-9-]+$")


def _parse_topics(variable: str, text: str) -> tuple[Topic, ...]:
    """`slug[:Name[:default]]` items, comma separated; the first item is on by default if none is."""
    topics: list[Topic] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        slug, _, rest = item.partition(":")
        name, _, flag = rest.partition(":")
        slug = slug.strip()
        if not _SLUG.match(slug):
            raise SettingsError(
                variable, "topics as slug:Name[:default], slug of a-z 0-9 -, ≤ 32 chars", item
            )
        if flag.strip() not in {"", "default"}:
            raise SettingsError(variable, "the third part of a topic to be 'default'", item)
        topics.append(Topic(slug, name.strip() or slug.capitalize(), flag.strip() == "default"))
    if not topics:
        raise SettingsError(variable, "at least one topic", text)
    if len({t.slug for t in topics}) != len(topics):
        raise SettingsError(variable, "each topic slug once", text)
    if not any(t.default for t in topics):
        topics[0] = Topic(topics[0].slug, topics[0].name, True)
    return tuple(topics)


def _parse_push_hosts(variable: str, text: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
    for host in hosts:
        if not _HOST_PATTERN.match(host):
            raise SettingsError(variable, "host names, optionally starting with *.", host)
    if not hosts:
        raise SettingsError(variable, "at least one push service host", text)
    return hosts


def _check_url(variable: str, value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise SettingsError(
            variable, "a URL starting with " + " or ".join(s + "://" for s in schemes), value
        )
    return value


def known_variables() -> frozenset[str]:
    """Every environment variable load_settings reads (docs and docker-compose are checked
    against this)."""
    asked: set[str] = set()
    load_settings(environ={}, env_file=None, _asked=asked)
    return frozenset(asked)


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
    _asked: set[str] | None = None,
    missing_secret_files_ok: bool = False,
) -> Settings:
    """missing_secret_files_ok: for `newsflash init`, which is about to create them."""
    """Build Settings from the environment (the only reader of os.environ) and an optional .env."""
    env: dict[str, str] = {}
    if env_file is not None:
        env.update(_read_env_file(Path(env_file)))
    env.update(os.environ if environ is None else environ)
    read = _Reader(env, _asked if _asked is not None else set(), missing_secret_files_ok)

    var_dir = Path(read.text("VAR_DIR", "var"))
    database_url = read.text("DATABASE_URL", f"sqlite:///{var_dir}/newsflash.db")
    database_url = _check_url(
        PREFIX + "DATABASE_URL",
        database_url,
        ("sqlite", "postgresql", "postgresql+psycopg"),
    )
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    redis_url = _check_url(
        PREFIX + "REDIS_URL",
        read.text("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("redis", "rediss"),
    )
    broker_url = _check_url(
        PREFIX + "BROKER_URL",
        read.text("BROKER_URL", redis_url),
        ("redis", "rediss", "amqp", "amqps", "pyamqp"),
    )

    vapid_pem, vapid_file = read.secret("VAPID_PRIVATE_KEY", var_dir, "vapid_private.pem")
    if vapid_pem and "BEGIN" not in vapid_pem:
        raise SettingsError(
            PREFIX + "VAPID_PRIVATE_KEY" + ("_FILE" if vapid_file else ""),
            "a PEM encoded P-256 private key (newsflash init creates one)",
        )
    secret_key, _ = read.secret("SECRET_KEY", var_dir, "secret_key")
    cms_secret, _ = read.secret("CMS_WEBHOOK_SECRET", var_dir, "cms_webhook_secret")
    subject = read.raw("VAPID_SUBJECT")
    if subject is None:
        subject_file = var_dir / "vapid_subject"
        subject = subject_file.read_text(encoding="utf-8").strip() if subject_file.exists() else ""
    if subject and not subject.startswith(("mailto:", "https://")):
        raise SettingsError(PREFIX + "VAPID_SUBJECT", "a mailto: or https:// URL", subject)

    origins_text = read.text("PUBLIC_ORIGINS", "http://127.0.0.1:8000")
    origins = tuple(
        _parse_origin(PREFIX + "PUBLIC_ORIGINS", o) for o in origins_text.split(",") if o.strip()
    )
    if not origins:
        raise SettingsError(PREFIX + "PUBLIC_ORIGINS", "at least one origin", origins_text)

    timezone = read.text("NEWSROOM_TIMEZONE", "Africa/Nairobi")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            PREFIX + "NEWSROOM_TIMEZONE", "an IANA time zone like Africa/Nairobi", timezone
        ) from None

    alert_webhook = read.raw("ALERT_WEBHOOK")
    if alert_webhook is not None:
        _check_url(PREFIX + "ALERT_WEBHOOK", alert_webhook, ("http", "https"))
    task_time_limit_s = read.whole("TASK_TIME_LIMIT_S", 300, 10, 3600)
    read.asked.add("PORT")
    port_text = env.get("PORT", "").strip() or "8000"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SettingsError("PORT", "a TCP port number from 1 to 65535", port_text)
    port = int(port_text)
    log_level = read.text("LOG_LEVEL", "INFO").upper()
    # prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself (`newsflash run` sets it); the
    # other processes get NEWSFLASH_METRICS_DIR exported by core.adapters.metrics.install.
    read.asked.add("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = Path(
        env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
        or read.text("METRICS_DIR", str(var_dir / "metrics"))
    )
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(PREFIX + "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", log_level)
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    event_loop = read.text("EVENT_LOOP", "uvloop" if have_uvloop else "asyncio").lower()
    if event_loop not in {"uvloop", "asyncio"}:
        raise SettingsError(PREFIX + "EVENT_LOOP", "uvloop or asyncio", event_loop)
    if event_loop == "uvloop" and not have_uvloop:
        raise SettingsError(
            PREFIX + "EVENT_LOOP", "asyncio, or install uvloop (pip install uvloop)", event_loop
        )

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker_url,
        var_dir=var_dir,
        vapid_private_key_pem=vapid_pem,
        vapid_private_key_file=vapid_file,
        vapid_subject=subject,
        secret_key=secret_key,
        public_origins=origins,
        push_hosts=_parse_push_hosts(
            PREFIX + "PUSH_HOSTS", read.text("PUSH_HOSTS", DEFAULT_PUSH_HOSTS)
        ),
        allow_loopback_push=read.flag("ALLOW_LOOPBACK_PUSH", False),
        topics=_parse_topics(PREFIX + "TOPICS", read.text("TOPICS", DEFAULT_TOPICS)),
        default_ttl_s=read.whole("DEFAULT_TTL", 3600, 60, MAX_TTL_S),
        cms_webhook_secret=cms_secret,
        alert_webhook_url=alert_webhook,
        batch_size=read.whole("BATCH_SIZE", 1000, 1, 10_000),
        concurrency_per_process=read.whole("CONCURRENCY", 100, 1, 2000),
        concurrency_per_host=read.whole("CONCURRENCY_PER_HOST", 100, 1, 2000),
        connect_timeout_s=read.number("CONNECT_TIMEOUT_S", 5.0, 0.1, 60),
        read_timeout_s=read.number("READ_TIMEOUT_S", 10.0, 0.1, 120),
        request_deadline_s=read.number("REQUEST_DEADLINE_S", 15.0, 0.2, 180),
        retry_max_attempts=read.whole("RETRY_MAX_ATTEMPTS", 6, 1, 50),
        retry_base_s=read.number("RETRY_BASE_S", 10.0, 0.0, 3600),
        retry_cap_s=read.number("RETRY_CAP_S", 3600.0, 1.0, 86400),
        stale_after_s=read.number("STALE_AFTER_S", 60.0, 1.0, 3600),
        breaker_open_s=read.number("BREAKER_OPEN_S", 300.0, 5.0, 86400),
        event_loop=event_loop,
        task_time_limit_s=task_time_limit_s,
        visibility_timeout_s=read.whole("VISIBILITY_TIMEOUT_S", 3600, 60, 86400),
        prompt_title=read.text("PROMPT_TITLE", "Be the first to know."),
        prompt_body=read.text("PROMPT_BODY", "Get breaking news alerts from us."),
        prompt_accept=read.text("PROMPT_ACCEPT", "Yes, Thanks"),
        prompt_dismiss=read.text("PROMPT_DISMISS", "Not now"),
        prompt_reask_days=read.whole("PROMPT_REASK_DAYS", 7, 0, 365),
        newsroom_timezone=timezone,
        undo_window_s=read.whole("UNDO_WINDOW_S", 10, 0, 300),
        subscription_max_age_days=read.whole("SUBSCRIPTION_MAX_AGE_DAYS", 180, 1, 3650),
        rate_limit_subscribe=read.text("RATE_LIMIT_SUBSCRIBE", "30 per minute"),
        rate_limit_login=read.text("RATE_LIMIT_LOGIN", "10 per minute"),
        metrics_token=read.raw("METRICS_TOKEN"),
        push_ca_file=read.raw("PUSH_CA_FILE"),
        worker_concurrency=read.whole("WORKER_CONCURRENCY", 2, 1, 64),
        proxy_hops=read.whole("PROXY_HOPS", 0, 0, 5),
        web_threads=read.whole("WEB_THREADS", 8, 1, 256),
        web_read_timeout_s=read.number("WEB_READ_TIMEOUT_S", 10.0, 1.0, 300.0),
        web_idle_timeout_s=read.number("WEB_IDLE_TIMEOUT_S", 20.0, 1.0, 3600.0),
        web_connection_limit=read.whole("WEB_CONNECTION_LIMIT", 1000, 10, 100_000),
        port=port,
        api_url=_check_url(
            PREFIX + "API_URL", read.text("API_URL", f"http://127.0.0.1:{port}"), ("http", "https")
        ),
        api_token=read.secret("API_TOKEN", var_dir, None)[0] or None,
        log_level=log_level,
        log_json=read.flag("LOG_JSON", True),
        metrics_dir=metrics_dir,
        ops_cache_s=read.number("OPS_CACHE_S", 2.0, 0.0, 60.0),
        inspect_timeout_s=read.number("INSPECT_TIMEOUT_S", 1.0, 0.1, 10.0),
        alarm_interval_s=read.number("ALARM_INTERVAL_S", 5.0, 0.5, 300.0),
        alarm_stall_s=read.number("ALARM_STALL_S", 60.0, 1.0, 86400.0),
        alarm_pending_s=read.number("ALARM_PENDING_S", 120.0, 1.0, 86400.0),
        alarm_for_s=read.number("ALARM_FOR_S", 10.0, 0.0, 3600.0),
    )
