"""`newsflash --help` (and every refusal argparse makes) starts without the service's heavy
libraries: they are imported by the commands that use them, not by the parser."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.services import ROOT

HEAVY = ("sqlalchemy", "celery", "kombu", "redis", "flask", "core.bootstrap")

# Runs the command in a fresh interpreter, then prints which of HEAVY it imported.
PROBE = """
import json, sys
from cli.main import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
heavy = json.loads(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.split(".")[0] in heavy)))
"""


def _loaded(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(result.stdout.splitlines()[-1]))


def test_help_loads_no_database_broker_or_web_library() -> None:
    assert _loaded("--help") == []
    assert _loaded("alerts", "--help") == []


def test_a_refused_option_loads_none_either() -> None:
    assert _loaded("web", "--workers", "0") == []
