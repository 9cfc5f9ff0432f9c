"""Structured logs: one JSON line per event, with endpoints, keys, tokens and passwords redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from core import correlation
from core.endpoints import redact_endpoint

# The fields every delivery event carries when it knows them (passed with `extra=` or stamped
# from the correlation scope by CorrelationFilter).
CONTEXT_FIELDS: Final = ("request_id", "alert_id", "task_id", "batch_id", "push_host", "outcome")
REDACTED: Final = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message"}

# Field names whose values are secret whatever they look like.
_SECRET_NAMES: Final = frozenset(
    {
        "auth",
        "p256dh",
        "keys",
        "password",
        "passwd",
        "secret",
        "token",
        "api_token",
        "authorization",
        "cookie",
        "private_key",
        "vapid_private_key",
        "secret_key",
        "webhook_secret",
        "subscription",
    }
)
_SECRET_SUFFIXES: Final = ("_token", "_secret", "_password", "_private_key", "_pem")
_ENDPOINT_NAMES: Final = frozenset({"endpoint", "old_endpoint", "oldEndpoint", "new_endpoint"})

_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.DOTALL)
_HTTP_URL = re.compile(r"\bhttps?://[^\s\"'<>\\]+", re.IGNORECASE)
# Other URLs (redis://, amqp://, postgresql+psycopg://) may carry a password in the userinfo.
_USERINFO_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@\"']*@", re.IGNORECASE)
_BEARER = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_VAPID = re.compile(r"\b(vapid\s+)?t=[A-Za-z0-9._-]+,\s*k=[A-Za-z0-9_-]+", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_API_TOKEN = re.compile(r"\b(nf|whsec)_[A-Za-z0-9_+/=-]{6,}")
_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|auth|p256dh|api[_-]?key|private[_-]?key)"
    r"(\"?\s*[:=]\s*\"?)([^\s\"',;&}]+)"
)
# Push keys and tokens are long runs of base64url: mixed case, at least 20 characters.
_KEYLIKE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{20,}={0,2}(?![A-Za-z0-9_-])")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _keylike(match: re.Match[str]) -> str:
    text = match.group(0)
    if _UUID.match(text):
        return text
    mixed_case = re.search(r"[a-z]", text) and re.search(r"[A-Z]", text)
    # Pure letters-and-digits runs (hashes, random ids) too; worker names like
    # "worker-1234-5678" and task names keep their separators and survive.
    alnum_mix = text.isalnum() and re.search(r"[0-9]", text) and re.search(r"[A-Za-z]", text)
    return REDACTED if mixed_case or alnum_mix else text


def redact_text(text: str) -> str:
    """Remove everything secret or personal from free text (messages, tracebacks)."""
    if not text:
        return text
    text = _PEM.sub("[redacted key]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _VAPID.sub("vapid t=[redacted], k=[redacted]", text)
    text = _JWT.sub(REDACTED, text)
    text = _USERINFO_URL.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _HTTP_URL.sub(lambda m: redact_endpoint(m.group(0)), text)
    text = _API_TOKEN.sub(lambda m: f"{m.group(1)}_{REDACTED}", text)
    text = _ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _KEYLIKE.sub(_keylike, text)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def redact_value(name: str, value: Any) -> Any:
    """A structured field: secret names lose their value, endpoints keep host + hash."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if name == "request_id" and correlation.sane_request_id(value):
        # Checked to be a short run of [A-Za-z0-9._-]: a proxy's 32-hex id must stay greppable.
        return value
    if name in _ENDPOINT_NAMES and isinstance(value, str):
        return redact_endpoint(value)
    if _is_secret_name(name):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(name, v) for v in value]
    return redact_text(str(value))


ContextProvider = Callable[[], Mapping[str, Any]]
_context_providers: list[ContextProvider] = []


def add_context_provider(provider: ContextProvider) -> None:
    """Adapters add ambient fields (the Celery task id) without core importing Celery."""
    if provider not in _context_providers:
        _context_providers.append(provider)


class CorrelationFilter(logging.Filter):
    """Stamps the request id and alert id of the current request or task on every record
    (what a record passes explicitly with `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in correlation.current().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class RedactingFilter(logging.Filter):
    """Runs on the handler, so every logger's records (ours, Celery's, libraries') pass it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for provider in _context_providers:
            try:
                for key, value in provider().items():
                    if value is not None and getattr(record, key, None) is None:
                        setattr(record, key, value)
            except Exception:  # noqa: S112 - a context lookup must never drop a log line
                continue
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key in list(vars(record)):
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                setattr(record, key, redact_value(key, getattr(record, key)))
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact_text(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_text:
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a terminal (NEWSFLASH_LOG_JSON=off): the same fields as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in extra_fields(record).items() if v is not None)
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += "  " + fields
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def make_handler(json_lines: bool = True, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CorrelationFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.set_name("newsflash")
    return handler


def configure_logging(level: str = "INFO", json_lines: bool = True, stream: Any = None) -> None:
    """Replace the root logger's handlers with one redacting handler (idempotent)."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(make_handler(json_lines, stream))
    root.setLevel(level)
    logging.captureWarnings(True)
    # Libraries that log request URLs at INFO would only add noise (and are redacted anyway).
    for noisy in ("urllib3", "aiohttp.access", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # Beat fires housekeeping every second or two; a line per tick would drown the events
    # that matter (our own task logs say what each delivery did).
    if root.level > logging.DEBUG:
        # Alembic 1.17+ names each of its plugins at INFO whenever a backup or a status
        # reads the migration revision: six lines that say nothing to ops.
        for chatty in ("celery.app.trace", "celery.worker.strategy", "alembic.runtime.plugins"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
        beat = logging.getLogger("celery.beat")
        if not any(isinstance(f, _DropDueTaskLines) for f in beat.filters):
            beat.addFilter(_DropDueTaskLines())


class _DropDueTaskLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno <= logging.INFO
            and str(record.msg).startswith("Scheduler: Sending due task")
        )
