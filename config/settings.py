"""Settings: each one declared once (environment name, kind, default, help), loaded once per process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from config.alarms import AlarmSettings
from config.backups import BackupSettings
from config.declaration import Declaration, Default, FromFile, SettingsError, secret_file, setting
from config.kinds import (
    Choice,
    Color,
    DatabaseUrl,
    Directory,
    EventLoop,
    Flag,
    Number,
    Origins,
    PrivateKey,
    PushHosts,
    RateLimit,
    ReadableFile,
    Subject,
    Text,
    TimeZone,
    Token,
    Topic,
    Topics,
    Url,
    WebhookSecret,
    Whole,
)
from config.loading import Loader, read_environment, uvloop_if_installed, var_file
from config.upkeep import UpkeepSettings

__all__ = ["Declaration", "Settings", "SettingsError", "Topic", "declarations", "load_settings"]

MAX_TTL_S: Final = 4 * 7 * 24 * 3600
DAY_S: Final = 24 * 3600
FRESHEST_FIRST_HELP: Final = "recently seen readers get topic alerts first (docs/capacity.md)"

_TOPICS = (
    "breaking:Breaking news|Habari za dharura:default,politics:Politics|Siasa,"
    "business:Business|Biashara,sport:Sport|Michezo"
)
_PUSH_HOSTS = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)


@dataclass(frozen=True)
class Settings(BackupSettings, AlarmSettings, UpkeepSettings):
    """Everything configurable. Fields load in this order: a default may use those above it."""

    var_dir: Path = setting(
        "NEWSFLASH_VAR_DIR", Directory(), "var", "where `init` keeps keys and the SQLite file"
    )
    database_url: str = setting(
        "NEWSFLASH_DATABASE_URL",
        DatabaseUrl(),
        Default("`sqlite:///var/newsflash.db`", lambda v: f"sqlite:///{v['var_dir']}/newsflash.db"),
        "SQLAlchemy URL; `postgresql+psycopg://user:pass@host/db` in production",
    )
    redis_url: str = setting(
        "NEWSFLASH_REDIS_URL",
        Url("redis", "rediss"),
        "redis://127.0.0.1:6379/0",
        "Celery broker (Redis), rate limits, per-host push state",
    )
    broker_url: str = setting(
        "NEWSFLASH_BROKER_URL",
        Url("redis", "rediss", "amqp", "amqps", "pyamqp"),
        Default("= `NEWSFLASH_REDIS_URL`", lambda v: v["redis_url"]),
        "`amqp://...` to run the queues on RabbitMQ",
    )
    vapid_private_key_file: Path | None = secret_file(
        "NEWSFLASH_VAPID_PRIVATE_KEY_FILE",
        "NEWSFLASH_VAPID_PRIVATE_KEY",
        "vapid_private.pem",
        "the VAPID key (used unless `NEWSFLASH_VAPID_PRIVATE_KEY` is set)",
    )
    vapid_private_key_pem: str = setting(
        "NEWSFLASH_VAPID_PRIVATE_KEY",
        PrivateKey(),
        FromFile("vapid_private_key_file", "read from `NEWSFLASH_VAPID_PRIVATE_KEY_FILE`"),
        "VAPID signing key, PEM P-256 (never logged)",
        secret=True,
        empty="",
    )
    vapid_subject: str = setting(
        "NEWSFLASH_VAPID_SUBJECT",
        Subject(),
        Default("`$NEWSFLASH_VAR_DIR/vapid_subject` (by `init`)", var_file("vapid_subject")),
        "JWT `sub`: a contact; start-up warns when it names localhost (Apple refuses it)",
        empty="",
    )
    secret_key_file: Path | None = secret_file(
        "NEWSFLASH_SECRET_KEY_FILE", "NEWSFLASH_SECRET_KEY", "secret_key", "the app secret"
    )
    secret_key: str = setting(
        "NEWSFLASH_SECRET_KEY",
        Token(),
        FromFile("secret_key_file", "read from `NEWSFLASH_SECRET_KEY_FILE`"),
        "Flask sessions, CSRF",
        secret=True,
        empty="",
    )
    cms_webhook_secret_file: Path | None = secret_file(
        "NEWSFLASH_CMS_WEBHOOK_SECRET_FILE",
        "NEWSFLASH_CMS_WEBHOOK_SECRET",
        "cms_webhook_secret",
        "the CMS webhook secret",
    )
    cms_webhook_secret: str = setting(
        "NEWSFLASH_CMS_WEBHOOK_SECRET",
        WebhookSecret(),
        FromFile("cms_webhook_secret_file", "read from `NEWSFLASH_CMS_WEBHOOK_SECRET_FILE`"),
        "Standard Webhooks secret the CMS signs with",
        secret=True,
        empty="",
    )
    port: int = setting(
        "PORT",
        Whole(1, 65535, "a TCP port number from 1 to 65535"),
        "8000",
        "web port for `make run` / `newsflash web`",
    )
    public_origins: tuple[str, ...] = setting(
        "NEWSFLASH_PUBLIC_ORIGINS",
        Origins(),
        Default("`http://127.0.0.1:$PORT`", lambda v: f"http://127.0.0.1:{v['port']}"),
        "the publisher's origins: alert URLs and images must be on one; https except loopback",
    )
    push_hosts: tuple[str, ...] = setting(
        "NEWSFLASH_PUSH_HOSTS",
        PushHosts(),
        _PUSH_HOSTS,
        "anchored allowlist for subscription endpoints",
    )
    allow_loopback_push: bool = setting(
        "NEWSFLASH_ALLOW_LOOPBACK_PUSH",
        Flag(),
        "off",
        "tests and the local demo only: endpoints on 127.0.0.1, ::1 or localhost accepted",
    )
    topics: tuple[Topic, ...] = setting(
        "NEWSFLASH_TOPICS", Topics(), _TOPICS, "topics offered to readers"
    )
    default_ttl_s: int = setting(
        "NEWSFLASH_DEFAULT_TTL",
        Whole(60, MAX_TTL_S),
        "3600",
        "seconds an alert stays worth delivering, counted from its release; each push asks the push service to keep it for what is left (never 0)",
    )
    alert_webhook_url: str | None = setting(
        "NEWSFLASH_ALERT_WEBHOOK",
        Url("http", "https", private_path=True),
        None,
        "where ops alarms are POSTed",
    )
    api_url: str = setting(
        "NEWSFLASH_API_URL",
        Url("http", "https"),
        Default("`http://127.0.0.1:$PORT`", lambda v: f"http://127.0.0.1:{v['port']}"),
        "what `newsflash send` talks to",
    )
    api_token_file: Path | None = secret_file(
        "NEWSFLASH_API_TOKEN_FILE", "NEWSFLASH_API_TOKEN", None, "the API token"
    )
    api_token: str | None = setting(
        "NEWSFLASH_API_TOKEN",
        Token(),
        FromFile("api_token_file", "read from `NEWSFLASH_API_TOKEN_FILE`"),
        "the token `newsflash send` uses (else a local CLI token)",
        secret=True,
    )
    # Delivery tuning (capacity planning in the README).
    batch_size: int = setting(
        "NEWSFLASH_BATCH_SIZE", Whole(1, 10_000), "1000", "subscribers per delivery task"
    )
    freshest_first: bool = setting("NEWSFLASH_FRESHEST_FIRST", Flag(), "on", FRESHEST_FIRST_HELP)
    concurrency_per_process: int = setting(
        "NEWSFLASH_CONCURRENCY",
        Whole(1, 2000),
        "1000",
        "most push requests in flight per worker process (docs/capacity.md)",
    )
    concurrency_per_host: int = setting(
        "NEWSFLASH_CONCURRENCY_PER_HOST",
        Whole(1, 2000),
        "1000",
        "most push requests in flight per push host and worker process",
    )
    concurrency_mode: str = setting(
        "NEWSFLASH_CONCURRENCY_MODE",
        Choice("adaptive", "fixed"),
        "adaptive",
        "`adaptive`: each push host's window sizes itself from answer times and errors, up to"
        " NEWSFLASH_CONCURRENCY_PER_HOST; `fixed`: always that many",
    )
    worker_concurrency: int = setting(
        "NEWSFLASH_WORKER_CONCURRENCY",
        Whole(1, 64),
        "2",
        "worker processes per `newsflash worker`",
    )
    event_loop: str = setting(
        "NEWSFLASH_EVENT_LOOP",
        EventLoop(),
        Default("`uvloop` where installed, else `asyncio`", uvloop_if_installed),
        "the delivery workers' event loop",
    )
    connect_timeout_s: float = setting(
        "NEWSFLASH_CONNECT_TIMEOUT_S", Number(0.1, 60), "5", "push request connect timeout"
    )
    read_timeout_s: float = setting(
        "NEWSFLASH_READ_TIMEOUT_S", Number(0.1, 120), "10", "push request read timeout"
    )
    request_deadline_s: float = setting(
        "NEWSFLASH_REQUEST_DEADLINE_S",
        Number(0.2, 180),
        "15",
        "every push request ends within this",
    )
    retry_max_attempts: int = setting(
        "NEWSFLASH_RETRY_MAX_ATTEMPTS",
        Whole(1, 50),
        "6",
        "tries per delivery for 5xx and network errors",
    )
    retry_base_s: float = setting(
        "NEWSFLASH_RETRY_BASE_S", Number(0, 3600), "10", "first retry delay (exponential, jitter)"
    )
    retry_cap_s: float = setting(
        "NEWSFLASH_RETRY_CAP_S", Number(1, DAY_S), "3600", "longest retry delay"
    )
    stale_after_s: float = setting(
        "NEWSFLASH_STALE_AFTER_S",
        Number(1, 3600),
        "60",
        "the reconciler re-queues work with no progress for this long",
    )
    breaker_open_s: float = setting(
        "NEWSFLASH_BREAKER_OPEN_S",
        Number(5, DAY_S),
        "300",
        "a push host that refuses our requests (400/401/403 for 2 s with nothing delivered) is held this long",
    )
    task_time_limit_s: int = setting(
        "NEWSFLASH_TASK_TIME_LIMIT_S",
        Whole(10, 3600),
        "300",
        "hard limit per task; must stay well below the visibility timeout",
    )
    visibility_timeout_s: int = setting(
        "NEWSFLASH_VISIBILITY_TIMEOUT_S",
        Whole(60, DAY_S),
        "3600",
        "broker redelivery after this; the worker refuses to start if not above task limits",
    )
    push_ca_file: str | None = setting(
        "NEWSFLASH_PUSH_CA_FILE",
        ReadableFile(),
        None,
        "extra CA for TLS push stand-ins in tests and benchmarks",
    )
    test_clock_file: str | None = setting(
        "NEWSFLASH_TEST_CLOCK_FILE",
        ReadableFile(),
        None,
        "tests only: clocks run its seconds ahead",
    )
    # Reader and newsroom.
    prompt_title: str = setting(
        "NEWSFLASH_PROMPT_TITLE", Text(), "Be the first to know.", "the reader prompt's title"
    )
    prompt_body: str = setting(
        "NEWSFLASH_PROMPT_BODY",
        Text(),
        "Get breaking news alerts from us.",
        "the reader prompt's text",
    )
    prompt_accept: str = setting(
        "NEWSFLASH_PROMPT_ACCEPT", Text(40), "Yes, Thanks", "the prompt's accept button"
    )
    prompt_dismiss: str = setting(
        "NEWSFLASH_PROMPT_DISMISS", Text(40), "Not now", "the prompt's dismiss button"
    )
    prompt_reask_days: int = setting(
        "NEWSFLASH_PROMPT_REASK_DAYS",
        Whole(0, 365),
        "7",
        "days before a dismissed prompt asks again",
    )
    prompt_reask_after_off_days: int = setting(
        "NEWSFLASH_PROMPT_REASK_AFTER_OFF_DAYS",
        Whole(0, 3650),
        "90",
        "days before the widget asks again a reader who turned alerts off",
    )
    default_lang: str = setting(
        "NEWSFLASH_DEFAULT_LANG",
        Choice("en", "sw"),
        "en",
        "reader texts when neither the page nor the browser names en or sw; the language of"
        " readers and alerts that name none",
    )
    site_name: str = setting(
        "NEWSFLASH_SITE_NAME", Text(80), "The Eastmere Courier", "manifest and preview name"
    )
    site_short_name: str = setting(
        "NEWSFLASH_SITE_SHORT_NAME", Text(12), "Courier", "name under the Home Screen icon"
    )
    site_icon_url: str | None = setting(
        "NEWSFLASH_SITE_ICON_URL", Url("http", "https"), None, "the site's icon on previews"
    )
    theme_color: str = setting(
        "NEWSFLASH_THEME_COLOR", Color(), "#7a0019", "manifest theme and icon background colour"
    )
    newsroom_timezone: str = setting(
        "NEWSFLASH_NEWSROOM_TIMEZONE",
        TimeZone(),
        "Africa/Nairobi",
        "schedule times in the newsroom",
    )
    undo_window_s: int = setting(
        "NEWSFLASH_UNDO_WINDOW_S", Whole(0, 300), "10", "newsroom undo window after Send"
    )
    duplicate_window_s: int = setting(
        "NEWSFLASH_DUPLICATE_WINDOW_S", Whole(0, 7 * DAY_S), "21600", "repeat check window (0: off)"
    )
    # Alerts from a feed (core/feeds.py) and the publish-readiness gate (core/readiness.py).
    feed_poll_interval_s: int = setting(
        "NEWSFLASH_FEED_POLL_INTERVAL_S", Whole(15, 86400), "60", "how often each feed is polled"
    )
    feed_min_gap_s: int = setting(
        "NEWSFLASH_FEED_MIN_GAP_S",
        Whole(0, 86400),
        "120",
        "feeds set to auto never send two alerts closer together than this",
    )
    feed_max_bytes: int = setting(
        "NEWSFLASH_FEED_MAX_BYTES", Whole(16384, 20_000_000), "1048576", "a larger feed is refused"
    )
    wait_for_article: bool = setting(
        "NEWSFLASH_WAIT_FOR_ARTICLE",
        Flag(),
        "off",
        "on: hold each alert until its article answers 2xx (off per alert: wait_for_article false)",
    )
    article_wait_s: int = setting(
        "NEWSFLASH_ARTICLE_WAIT_S",
        Whole(5, 600),
        "60",
        "longest an alert waits for its article before it is sent anyway",
    )
    utm: bool = setting("NEWSFLASH_UTM", Flag(), "on", "UTM tags on click-through URLs")
    utm_source: str = setting("NEWSFLASH_UTM_SOURCE", Text(100), "newsflash", "utm_source value")
    utm_medium: str = setting("NEWSFLASH_UTM_MEDIUM", Text(100), "push", "utm_medium value")
    subscription_max_age_days: int = setting(
        "NEWSFLASH_SUBSCRIPTION_MAX_AGE_DAYS",
        Whole(1, 3650),
        "180",
        "subscriptions not seen for this long are purged",
    )
    story_open_days: int = setting(
        "NEWSFLASH_STORY_OPEN_DAYS", Whole(1, 60), "3", "a followable story closes after N days"
    )
    rate_limit_subscribe: str = setting(
        "NEWSFLASH_RATE_LIMIT_SUBSCRIBE",
        RateLimit(),
        "30 per minute",
        "per-IP limit on the subscription routes",
    )
    rate_limit_login: str = setting(
        "NEWSFLASH_RATE_LIMIT_LOGIN", RateLimit(), "10 per minute", "refused logins per IP/account"
    )
    session_lifetime_s: int = setting(
        "NEWSFLASH_SESSION_LIFETIME_S",
        Whole(60, 7 * DAY_S),
        "43200",
        "Longest a newsroom login lasts",
    )
    session_idle_s: int = setting(
        "NEWSFLASH_SESSION_IDLE_S",
        Whole(60, 43200),
        "7200",
        "Newsroom logins idle this long end",
    )
    proxy_hops: int = setting(
        "NEWSFLASH_PROXY_HOPS",
        Whole(0, 5),
        "0",
        "reverse proxies in front of the web app (trust X-Forwarded-For this many hops)",
    )
    # The web server (service/server.py): its threads only ever see whole requests.
    web_threads: int = setting(
        "NEWSFLASH_WEB_THREADS",
        Whole(1, 256),
        "8",
        "threads per web process; they serve requests that have fully arrived",
    )
    web_read_timeout_s: float = setting(
        "NEWSFLASH_WEB_READ_TIMEOUT_S",
        Number(1, 300),
        "10",
        "a request (line, headers, body) must arrive within this of its first byte, or is cut off",
    )
    web_idle_timeout_s: float = setting(
        "NEWSFLASH_WEB_IDLE_TIMEOUT_S",
        Number(1, 3600),
        "20",
        "a web connection with nothing arriving or to answer is closed after this",
    )
    web_connection_limit: int = setting(
        "NEWSFLASH_WEB_CONNECTION_LIMIT",
        Whole(10, 100_000),
        "1000",
        "open connections per web process; beyond it the process stops accepting for a while",
    )
    # Ops: Prometheus multiprocess files and the /ops cache (alarm thresholds: config/alarms.py).
    metrics_token: str | None = setting(
        "NEWSFLASH_METRICS_TOKEN",
        Token(),
        None,
        "an extra bearer token for `/metrics`",
        secret=True,
    )
    metrics_dir: Path = setting(
        "NEWSFLASH_METRICS_DIR",
        Directory(),
        Default("`$NEWSFLASH_VAR_DIR/metrics`", lambda v: f"{v['var_dir']}/metrics"),
        "Prometheus multiprocess files (`PROMETHEUS_MULTIPROC_DIR` wins when set)",
        overridden_by="PROMETHEUS_MULTIPROC_DIR",
    )
    ops_cache_s: float = setting(
        "NEWSFLASH_OPS_CACHE_S", Number(0, 60), "2", "`/ops` data shared by all viewers this long"
    )
    inspect_timeout_s: float = setting(
        "NEWSFLASH_INSPECT_TIMEOUT_S", Number(0.1, 10), "1", "wait for workers' replies this long"
    )
    log_level: str = setting(
        "NEWSFLASH_LOG_LEVEL",
        Choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "INFO",
        "log threshold",
    )
    log_json: bool = setting("NEWSFLASH_LOG_JSON", Flag(), "on", "structured JSON log lines")

    @property
    def topic_slugs(self) -> frozenset[str]:
        return frozenset(t.slug for t in self.topics)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.newsroom_timezone)


@cache
def declarations() -> tuple[Declaration, ...]:
    """Every setting, in load order, each knowing its Settings field name."""
    return tuple(replace(f.metadata["setting"], name=f.name) for f in fields(Settings))


def known_variables() -> frozenset[str]:
    """Every environment variable Newsflash reads (docs and docker-compose are checked against it)."""
    names = {d.env for d in declarations()}
    return frozenset(names | {d.overridden_by for d in declarations() if d.overridden_by})


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
    missing_secret_files_ok: bool = False,
) -> Settings:
    """Build Settings from the environment (the only reader of os.environ) and an optional .env.
    missing_secret_files_ok: for `newsflash init`, which is about to create them."""
    env = read_environment(environ, env_file)
    return Loader(env, declarations(), missing_secret_files_ok).load(Settings)
