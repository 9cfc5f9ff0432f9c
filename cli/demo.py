"""`newsflash push-standin` and `demo-subscribers`: the local push-service stand-in, and
subscriptions it owns, so a demo or a benchmark needs no browser."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from cli.args import command_name, whole_number
from cli.command import CliError, container, dev_tool_missing
from config.settings import Settings

# Where push-standin and `run` start the stand-in unless told otherwise, so where
# demo-subscribers looks by default (service.runner.DEFAULT_STANDIN_PORT says the same).
STANDIN_PORT = 8001
STANDIN_URL = f"http://127.0.0.1:{STANDIN_PORT}"


def cmd_push_standin(args: argparse.Namespace, settings: Settings) -> int:
    from service.listeners import ListenError, check_free

    try:
        from standin.server import main_foreground
    except ModuleNotFoundError as exc:
        if exc.name not in {"standin", "standin.server"}:
            raise
        raise CliError(dev_tool_missing("push-standin")) from None
    try:
        check_free(args.host, args.port, "pass --port")
    except ListenError as exc:
        raise CliError(str(exc)) from None
    main_foreground(args.host, args.port, tls=args.tls)
    return 0


def cmd_demo_subscribers(args: argparse.Namespace, settings: Settings) -> int:
    """Register N subscriptions owned by the stand-in, so a demo needs no browser."""
    from core.errors import Conflict, ValidationError
    from core.subscriptions import parse_subscription, record_opt_in

    unknown = [t for t in args.topic or () if t not in settings.topic_slugs]
    if unknown:
        known = ", ".join(sorted(settings.topic_slugs))
        raise CliError(f"--topic: unknown topic {unknown[0]!r}; known: {known}")
    request = urllib.request.Request(  # noqa: S310 - an http(s) URL (checked by its type)
        args.standin.rstrip("/") + "/_standin/subscriptions",
        data=json.dumps({"count": args.count, "mode": "ok"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            subs = json.loads(response.read())["subscriptions"]
    except urllib.error.HTTPError as exc:
        said = exc.read(500).decode("utf-8", "replace").strip()
        raise CliError(
            f"--standin: {args.standin} refused the request ({exc.code}: {said[:200]})"
        ) from None
    except urllib.error.URLError as exc:
        raise CliError(
            f"--standin: cannot reach {args.standin} ({exc}); start `{command_name()} push-standin`"
        ) from None
    from core.endpoints import EndpointPolicy

    c = container(settings)
    defaults = tuple(t.slug for t in settings.topics if t.default)
    # The operator asked for subscriptions at a stand-in on loopback: accept them here. Whether
    # they are ever pushed to is the workers' call (NEWSFLASH_ALLOW_LOOPBACK_PUSH, on in make run).
    policy = EndpointPolicy(settings.push_hosts, allow_loopback=True)
    now = time.time()
    for sub in subs:
        sub.setdefault("topics", list(args.topic or defaults))
        try:
            parsed = parse_subscription(sub, policy, settings.topic_slugs, defaults)
        except ValidationError as exc:
            raise CliError(
                f"--standin: the stand-in answered an unusable subscription ({exc.field}: {exc.message})"
            ) from None
        try:
            record_opt_in(c.subscriptions, parsed, now)
        except Conflict:
            raise CliError(
                "--standin: the stand-in answered an endpoint already stored with other keys"
            ) from None
    if not settings.allow_loopback_push:
        print(
            "note: workers push to these only with NEWSFLASH_ALLOW_LOOPBACK_PUSH=on (make run sets it)",
            file=sys.stderr,
        )
    print(
        f"registered {len(subs)} demo subscriptions at {args.standin} (topics: {', '.join(args.topic or defaults)})"
    )
    return 0


def _standin_url(text: str) -> str:
    """--standin: the stand-in's http:// or https:// base URL (nothing else is fetched)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not (port_ok and parts.scheme in ("http", "https") and parts.hostname):
        raise argparse.ArgumentTypeError(f"the stand-in's URL, like {STANDIN_URL}")
    return text


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "push-standin", help="run the local push-service stand-in (tests, demo)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=STANDIN_PORT)
    p.add_argument("--tls", action="store_true")
    p.set_defaults(func=cmd_push_standin, needs_keys=False, own_signals=True)

    p = subparsers.add_parser(
        "demo-subscribers", help="register N subscriptions owned by the stand-in"
    )
    p.add_argument("count", type=whole_number(1, 1_000_000), metavar="N")
    p.add_argument("--standin", type=_standin_url, default=STANDIN_URL)
    p.add_argument("--topic", action="append")
    p.set_defaults(func=cmd_demo_subscribers, needs_keys=False)
