"""`newsflash feeds ...`: follow an RSS/Atom feed, list, remove, poll now (the same use case as
the newsroom's feeds page, audited with the actor `cli`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.command import container
from cli.tables import print_table
from config.settings import Settings

CLI_ACTOR = "cli"


def _editor() -> Any:
    from core.usecases.newsroom import Editor

    return Editor(CLI_ACTOR)


FEED_COLUMNS = (
    ("ID", ">"),
    ("MODE", "<"),
    ("CATEGORY", "<"),
    ("TOPICS", "<"),
    ("URL", "<"),
    ("LAST POLL", "<"),
)


def cmd_feeds_list(args: argparse.Namespace, settings: Settings) -> int:
    found = container(settings).feeds.feeds()
    if args.json:
        print(json.dumps({"feeds": [feed_json(f) for f in found]}, indent=2))
        return 0
    rows = [
        (
            f.id,
            f.mode.value,
            f.category,
            ",".join(f.topics),
            f.url,
            f"error: {f.last_error}" if f.last_error else ("ok" if f.last_ok_at else "not polled"),
        )
        for f in found
    ]
    print_table(FEED_COLUMNS, rows, "no feeds")
    return 0


def feed_json(feed: Any) -> dict[str, Any]:
    from core.ops import iso

    return {
        "id": feed.id,
        "url": feed.url,
        "category": feed.category,
        "mode": feed.mode.value,
        "topics": list(feed.topics),
        "last_ok_at": iso(feed.last_ok_at),
        "last_error": feed.last_error,
        "last_error_at": iso(feed.last_error_at),
    }


def cmd_feeds_add(args: argparse.Namespace, settings: Settings) -> int:
    body = {"url": args.url, "category": args.category, "mode": args.mode}
    if args.topic:
        body["topics"] = args.topic
    feed = container(settings).feeds.add(_editor(), body)
    print(f"following feed {feed.id}: {feed.url} ({feed.mode.value}, category {feed.category})")
    return 0


def cmd_feeds_remove(args: argparse.Namespace, settings: Settings) -> int:
    container(settings).feeds.remove(_editor(), args.id)
    print(f"feed {args.id} removed")
    return 0


def cmd_feeds_poll(args: argparse.Namespace, settings: Settings) -> int:
    c = container(settings)
    ids = [args.id] if args.id is not None else [f.id for f in c.feeds.feeds()]
    failed = 0
    for feed_id in ids:
        result = c.feeds.poll(_editor(), feed_id)
        if result.error:
            failed += 1
            print(f"feed {feed_id}: {result.error}")
        elif result.not_modified:
            print(f"feed {feed_id}: not modified")
        else:
            print(f"feed {feed_id}: {result.new} new breaking item(s)")
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    feeds = subparsers.add_parser("feeds", help="alerts from RSS/Atom feeds").add_subparsers(
        dest="feeds_command", required=True, metavar="ACTION"
    )
    p = feeds.add_parser("list", help="the feeds followed, with their last error")
    p.add_argument("--json", action="store_true", help="the same, for machines")
    p.set_defaults(func=cmd_feeds_list, needs_keys=False)
    p = feeds.add_parser("add", help="follow a feed on one of NEWSFLASH_PUBLIC_ORIGINS")
    p.add_argument("--url", required=True)
    p.add_argument("--category", required=True, help="the category or tag that marks breaking")
    p.add_argument("--mode", choices=["review", "auto"], default="review")
    p.add_argument("--topic", action="append", help="repeat for several (default: the defaults)")
    p.set_defaults(func=cmd_feeds_add, needs_keys=False)
    p = feeds.add_parser("remove", help="stop following a feed")
    p.add_argument("id", type=int, metavar="ID")
    p.set_defaults(func=cmd_feeds_remove, needs_keys=False)
    p = feeds.add_parser("poll", help="poll now (one feed, or all); exit 1 if one fails")
    p.add_argument("id", type=int, nargs="?", metavar="ID")
    p.set_defaults(func=cmd_feeds_poll, needs_keys=False)
