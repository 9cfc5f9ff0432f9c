"""The sender's request slots fit the open-files limit: lifted toward the hard limit, else fewer."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, resource, sys
soft, hard = (int(x) for x in sys.argv[1:3])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
from core.adapters.fdlimit import slots_that_fit
slots = slots_that_fit(1000)
print(json.dumps([slots, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))
"""


def probe(soft: int, hard: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(soft), str(hard)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    slots, lifted = json.loads(out.stdout.strip().splitlines()[-1])
    return slots, lifted


def test_a_low_soft_limit_is_lifted_toward_the_hard_one() -> None:
    assert probe(1024, 4096) == (1000, 2256)  # 2 per slot and 256 kept for the rest


def test_a_low_hard_limit_means_fewer_slots_not_failed_connects() -> None:
    assert probe(600, 700) == (222, 700)


def test_a_high_limit_is_left_alone() -> None:
    assert probe(4000, 4000) == (1000, 4000)
