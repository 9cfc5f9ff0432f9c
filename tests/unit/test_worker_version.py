"""The service worker's VERSION is the one the widget and the manage page expect (and the one
the browser tests register): a page that expects another version takes the worker for one from
before a deploy and replaces it at every visit, without waiting for its check-in answer."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.browser import SW_SCRIPT

STATIC = Path(__file__).resolve().parents[2] / "service" / "static"


def _number(name: str, pattern: str) -> str:
    found = re.findall(pattern, (STATIC / name).read_text())
    assert len(found) == 1, f"{name}: one {pattern!r}, found {found}"
    return str(found[0])


def test_the_pages_expect_the_workers_version() -> None:
    worker = _number("sw.js", r"\nvar VERSION = (\d+);")
    # Served at the head of newsflash.js and manage.js (service/reader.py).
    assert _number("worker.client.js", r"var VERSION = '(\d+)';") == worker
    assert f"/sw.js?v={worker}" == SW_SCRIPT
