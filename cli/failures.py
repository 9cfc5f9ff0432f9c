"""A database, Redis or broker the command cannot use, as one line naming the setting to fix
(never the URL's password, never a traceback)."""

from __future__ import annotations

from config.settings import Settings


def brief(exc: BaseException) -> str:
    """An exception's first line for a one-line message: the driver's own error when SQLAlchemy
    wraps one, secrets redacted, at most 200 characters."""
    from core.adapters.logs import redact_text

    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    return redact_text(first)[:200]


def safe_url(url: str) -> str:
    """A database URL to print: its password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable>"


def _not_migrated(exc: BaseException) -> bool:
    cause = getattr(exc, "orig", None)
    return "no such table" in str(cause) or type(cause).__name__ == "UndefinedTable"


def service_failure(exc: BaseException, settings: Settings | None) -> str | None:
    """The one line for an exception that means a service is unusable, or None (a bug:
    let its traceback show)."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if _not_migrated(exc):
            return (
                "NEWSFLASH_DATABASE_URL: the database has no Newsflash tables yet; "
                "run `newsflash db upgrade` first"
            )
        where = f" at {safe_url(settings.database_url)}" if settings else ""
        return f"NEWSFLASH_DATABASE_URL: cannot use the database{where} ({brief(exc)})"
    if isinstance(exc, RedisConnectionError | RedisTimeout):
        return f"NEWSFLASH_REDIS_URL: cannot reach Redis ({brief(exc)})"
    if isinstance(exc, BrokerError):
        return f"NEWSFLASH_BROKER_URL: cannot reach the broker ({brief(exc)})"
    return None
