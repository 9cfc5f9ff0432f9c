"""The newsroom's passwords are hashed with Argon2id at argon2-cffi's recommended cost (RFC 9106's
second choice: 64 MiB, three passes, four lanes), checked in a fresh interpreter: the suite's own
process hashes at the lowest cost (tests/conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_production_hashes_cost_64_mib_and_three_passes() -> None:
    script = (
        "import json; from core.adapters import accounts_sql as a; h = a._hasher; "
        "print(json.dumps([h.type.name, h.memory_cost, h.time_cost, h.parallelism, "
        "a.dummy_hash().split('$')[1:4]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    kind, memory, passes, lanes, dummy = json.loads(out)
    assert (kind, memory, passes, lanes) == ("ID", 65536, 3, 4)
    # The dummy hash a missing user is checked against costs the same as a real one.
    assert dummy == ["argon2id", "v=19", "m=65536,t=3,p=4"]
