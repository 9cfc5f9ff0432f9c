"""The `newsflash` command: set-up, accounts, sending, the local stand-in, and running it all."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.args import MAX_PROCESSES, OneLineParser, command_name, like_setting, whole_number
from config.settings import Settings, SettingsError, load_settings
from core.bootstrap import StartupError

if TYPE_CHECKING:
    from core.bootstrap import Container

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """A one-line message for the terminal; exit status 2."""


def _write_secret(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Create, if absent, the VAPID key pair, app secret, webhook secret and a local subject."""
    import base64
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from core.base64url import b64url_encode

    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    os.chmod(var, 0o700)
    created: list[str] = []
    kept: list[str] = []

    key_path = settings.vapid_private_key_file or var / "vapid_private.pem"
    if key_path.exists():
        kept.append(str(key_path))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        _write_secret(key_path, pem)
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        (var / "vapid_public.txt").write_text(b64url_encode(raw) + "\n")
        created.append(f"{key_path} (VAPID private key, mode 0600)")
    for path, make in (
        (settings.secret_key_file or var / "secret_key", lambda: secrets.token_hex(32)),
        (
            settings.cms_webhook_secret_file or var / "cms_webhook_secret",
            lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        ),
        (var / "vapid_subject", lambda: args.subject),
    ):
        if path.exists():
            kept.append(str(path))
        else:
            _write_secret(path, make() + "\n")
            created.append(str(path))
    for line in created:
        print(f"created {line}")
    for line in kept:
        print(f"kept    {line} (already there)")
    return 0


def _container(settings: Settings) -> Container:
    from core.bootstrap import Container

    return Container(settings)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from cli.failures import brief, safe_url
    from core.adapters import migrate
    from core.adapters.sql import make_engine, sync_topics

    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        sync_topics(engine, settings.topics)
    except Exception as exc:
        raise CliError(
            f"NEWSFLASH_DATABASE_URL: could not migrate the database ({brief(exc)})"
        ) from None
    print(
        f"database at revision {migrate.current_revision(engine)} ({safe_url(settings.database_url)})"
    )
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    token, role = _container(settings).access.create_token(args.name, args.role)
    print(f"API token {args.name!r} ({role.value}). It is shown once; store it now:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    """Each token's id, the prefix it starts with (never the token), role, state and name."""
    from cli.tables import print_table, when

    tokens = _container(settings).accounts.list_tokens()
    if args.json:
        print(json.dumps({"tokens": [token_json(row) for row in tokens]}, indent=2))
        return 0
    columns = [("ID", ">"), ("STARTS WITH", "<"), ("ROLE", "<"), ("STATE", "<")]
    columns += [("CREATED", "<"), ("NAME", "<")]
    rows = [
        (
            row["id"],
            f"{row['prefix']}…",
            row["role"],
            "revoked" if row["revoked_at"] else "active",
            when(row["created_at"], settings.timezone),
            row["name"],
        )
        for row in tokens
    ]
    print_table(columns, rows, "no tokens")
    return 0


def token_json(row: dict[str, Any]) -> dict[str, Any]:
    from core.ops import iso

    found = {k: row[k] for k in ("id", "name", "prefix", "role", "created_by")}
    return found | {"created_at": iso(row["created_at"]), "revoked_at": iso(row["revoked_at"])}


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:

    _container(settings).access.revoke_token(args.id)
    print(f"revoked token {args.id}")
    return 0


def _cli_token(settings: Settings) -> str:
    """A local editor token kept in var/cli_token (0600), made on first use of `send`."""
    if settings.api_token:
        return settings.api_token
    path = settings.var_dir / "cli_token"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    from core.accounts import Role

    token = _container(settings).accounts.create_token("cli (local)", Role.EDITOR, created_by="cli")
    _write_secret(path, token + "\n")
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


def cmd_push_standin(args: argparse.Namespace, settings: Settings) -> int:
    from service.listeners import ListenError, check_free

    try:
        from standin.server import main_foreground
    except ModuleNotFoundError as exc:
        if exc.name not in {"standin", "standin.server"}:
            raise
        raise CliError(_dev_tool_missing("push-standin")) from None
    try:
        check_free(args.host, args.port, "pass --port")
    except ListenError as exc:
        raise CliError(str(exc)) from None
    main_foreground(args.host, args.port, tls=args.tls)
    return 0


def _dev_tool_missing(command: str) -> str:
    # The production image leaves standin/ and bench/ out (see the Dockerfile).
    return f"{command} is a development tool, not in this image"


def cmd_dev_tool_missing(args: argparse.Namespace, settings: Settings) -> int:
    raise CliError(_dev_tool_missing(args.tool))


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

    c = _container(settings)
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


def _queues(text: str) -> str:
    """worker -Q: the lanes this worker consumes, comma separated (an unknown name would make a
    worker that waits on a queue nobody sends to)."""
    from core.model import Lane

    names = [name.strip() for name in text.split(",") if name.strip()]
    known = [lane.value for lane in Lane]
    if not names or any(name not in known for name in names):
        raise argparse.ArgumentTypeError(f"comma separated, from: {', '.join(known)}")
    return ",".join(names)


def _standin_url(text: str) -> str:
    """--standin: the stand-in's http:// or https:// base URL (nothing else is fetched)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not (port_ok and parts.scheme in ("http", "https") and parts.hostname):
        raise argparse.ArgumentTypeError("the stand-in's URL, like http://127.0.0.1:8001")
    return text


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    from service.listeners import ListenError, open_listener
    from service.server import serve

    port = settings.port if args.port is None else args.port
    try:
        sock = open_listener(args.host, port, "set PORT or pass --port")
    except ListenError as exc:
        raise CliError(str(exc)) from None
    return serve(sock, settings, processes=args.workers)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.factory import ALL_QUEUES, check_worker_config, make_celery

    app = make_celery(settings)
    check_worker_config(dict(app.conf))
    queues = args.queues or ",".join(ALL_QUEUES)
    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "-Q",
        queues,
        "--concurrency",
        str(args.concurrency or settings.worker_concurrency),
    ]
    if args.name:
        argv += ["-n", args.name]
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    from workers.factory import make_celery

    app = make_celery(settings)
    schedule = settings.var_dir / "celerybeat-schedule"
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", settings.log_level, "-s", str(schedule)])
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from service.runner import run_all

    port = settings.port if args.port is None else args.port
    return run_all(settings, port=port, standin_port=args.standin_port, cli=command_name())


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = OneLineParser(
        prog="newsflash", description="Self-hosted breaking-news web push."
    )
    # `newsflash run` starts web and workers with it: its own start-up has said the warnings.
    parser.add_argument("--no-start-warnings", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_setup_commands(sub)
    _add_sending_commands(sub)
    _add_process_commands(sub)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


def _add_setup_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """init, db upgrade, token create|list|revoke."""
    p = sub.add_parser("init", help="create VAPID keys and secrets under var/ (idempotent)")
    p.add_argument(
        "--subject", default="mailto:newsflash@localhost", help="VAPID subject for local use"
    )
    p.set_defaults(func=cmd_init, needs_keys=False)

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    p = db.add_parser("upgrade", help="apply migrations")
    p.set_defaults(func=cmd_db_upgrade, needs_keys=False)

    token = sub.add_parser(
        "token", help="API tokens for the CMS, scripts and Prometheus"
    ).add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = token.add_parser(
        "create", help="create a token; it is printed once, alone on the last line"
    )
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=["editor", "ops", "admin"])
    p.set_defaults(func=cmd_token_create, needs_keys=False)
    p = token.add_parser("list", help="list tokens (never their values)")
    p.add_argument("--json", action="store_true", help="the same, for machines")
    p.set_defaults(func=cmd_token_list, needs_keys=False)
    p = token.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_token_revoke, needs_keys=False)


def _add_sending_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """send, push-standin, demo-subscribers."""
    p = sub.add_parser("send", help="publish an alert through the API")
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

    p = sub.add_parser("push-standin", help="run the local push-service stand-in (tests, demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--tls", action="store_true")
    p.set_defaults(func=cmd_push_standin, needs_keys=False)

    p = sub.add_parser("demo-subscribers", help="register N subscriptions owned by the stand-in")
    p.add_argument("count", type=whole_number(1, 1_000_000), metavar="N")
    p.add_argument("--standin", type=_standin_url, default="http://127.0.0.1:8001")
    p.add_argument("--topic", action="append")
    p.set_defaults(func=cmd_demo_subscribers, needs_keys=False)


def _add_process_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """web, worker, beat, run."""
    p = sub.add_parser("web", help="run the web app (waitress, one process per --workers)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--workers",
        type=whole_number(1, MAX_PROCESSES),
        default=2,
        help="server processes (one per core)",
    )
    p.set_defaults(func=cmd_web, needs_keys=True)

    p = sub.add_parser("worker", help="run a Celery worker (all queues unless -Q)")
    p.add_argument("-Q", "--queues", type=_queues, help="lanes, comma separated (default all)")
    p.add_argument(
        "-c", "--concurrency", type=like_setting("NEWSFLASH_WORKER_CONCURRENCY"), help="processes"
    )
    p.add_argument("-n", "--name")
    p.set_defaults(func=cmd_worker, needs_keys=True)

    p = sub.add_parser("beat", help="run Celery beat (schedules, retries, reconciler, alarms)")
    p.set_defaults(func=cmd_beat, needs_keys=False)

    p = sub.add_parser(
        "run", help="web + workers + beat + demo stand-in in the foreground (make run)"
    )
    p.add_argument("--port", type=int)
    p.add_argument("--standin-port", type=int, default=8001)
    p.set_defaults(func=cmd_run, needs_keys=True)


# Other modules (ops, bench) add their subcommands here: a callable taking the subparsers.
_EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def _load_extras() -> None:
    if _EXTRA_COMMANDS:
        return
    for module in ("cli.users", "cli.ops", "cli.settings", "cli.feeds", "bench.cli"):
        try:
            imported = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == "bench" and module == "bench.cli":
                _EXTRA_COMMANDS.append(_register_missing_bench)
            elif exc.name != module:
                raise
            continue
        _EXTRA_COMMANDS.append(imported.register)


def _register_missing_bench(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="benchmarks (development checkouts only)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_dev_tool_missing, tool="bench", needs_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    _load_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings(missing_secret_files_ok=args.func is cmd_init)
        if args.needs_keys:
            from core.bootstrap import load_signer

            load_signer(settings)
            if not args.no_start_warnings:
                warn_about(settings)
        return int(args.func(args, settings) or 0)
    except (SettingsError, StartupError, CliError) as exc:
        print(f"newsflash: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from core.errors import DomainError

        if isinstance(exc, DomainError):
            field = f"{exc.field}: " if exc.field else ""
            print(f"newsflash: {field}{exc.message}", file=sys.stderr)
            return 2
        from cli.failures import service_failure

        line = service_failure(exc, settings)
        if line is None:
            raise
        print(f"newsflash: {line}", file=sys.stderr)
        return 2


def warn_about(settings: Settings) -> None:
    if "localhost" in settings.vapid_subject:
        print(
            "newsflash: warning: NEWSFLASH_VAPID_SUBJECT names localhost; Apple's push service refuses it. "
            "Set a real mailto: or https: contact before going live.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    raise SystemExit(main())
