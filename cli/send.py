"""`newsflash send`: publish an alert through the HTTP API, as the newsroom does, with the
operator's token or a local editor token the CLI makes for itself."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from cli.args import command_name
from cli.command import CliError, container, write_secret
from config.settings import Settings


def _cli_token(settings: Settings) -> str:
    """A local editor token kept in var/cli_token (0600), made on first use of `send`."""
    if settings.api_token:
        return settings.api_token
    path = settings.var_dir / "cli_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    from core.accounts import Role

    token = container(settings).accounts.create_token("cli (local)", Role.EDITOR, created_by="cli")
    write_secret(path, token + "\n")
    print(f"(made a local editor token for the CLI in {path})", file=sys.stderr)
    return token


def api_request(
    settings: Settings,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    request_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    url = settings.api_url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - operator-given API URL
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token or _cli_token(settings)}")
    if request_id:
        request.add_header("X-Request-Id", request_id)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"error": {"message": raw.decode("utf-8", "replace")[:200]}}
    except urllib.error.URLError as exc:
        raise CliError(
            f"NEWSFLASH_API_URL: cannot reach {settings.api_url} ({exc.reason}); is `make run` running?"
        ) from None


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    body: dict[str, Any] = {
        "title": args.title,
        "body": args.body,
        "url": args.url,
        "topics": args.topic or ["breaking"],
    }
    for name in ("image", "urgency", "ttl", "article_id", "send_at"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if args.duplicate_ok:
        body["duplicate_ok"] = True
    from core.correlation import new_request_id

    request_id = "cli-" + new_request_id()
    status, answer = api_request(
        settings, "POST", "/api/v1/alerts", body, args.token, request_id=request_id
    )
    if status >= 400:
        error = answer.get("error", {})
        message = str(error.get("message", status))
        if error.get("field") == "duplicate_ok":
            # The API's words ("send with duplicate_ok") name its field; here it is an option.
            said = message.split("; send with duplicate_ok")[0]
            raise CliError(f"refused: {said}; add --duplicate-ok to send it anyway")
        field = f" ({error['field']})" if error.get("field") else ""
        raise CliError(f"refused{field}: {message}")
    verb = "queued" if status == 202 else "already sent before (same article or key)"
    print(f"alert {answer['id']} {verb}: status {answer['status']}, audience {answer['audience']}")
    print(f"follow it: {command_name()} alerts watch {answer['id']}")
    print(f"in the logs: request_id {request_id} (or alert_id {answer['id']})")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("send", help="publish an alert through the API")
    p.add_argument("--title", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--topic", action="append", help="repeatable; default breaking")
    p.add_argument("--image")
    p.add_argument("--urgency", choices=["very-low", "low", "normal", "high"])
    p.add_argument("--ttl", type=int)
    p.add_argument("--article-id")
    p.add_argument("--send-at", help="ISO time (newsroom time zone if no offset)")
    p.add_argument(
        "--duplicate-ok",
        action="store_true",
        help="send even if it repeats an alert of the last NEWSFLASH_DUPLICATE_WINDOW_S",
    )
    p.add_argument("--token", help="API token (default: NEWSFLASH_API_TOKEN or a local CLI token)")
    p.set_defaults(func=cmd_send, needs_keys=False)
