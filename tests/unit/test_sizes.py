"""Small pieces (issue 13, point 7): no module in core/, service/, workers/ or config/ over 500
lines, no function over 60 (cli/ too); `python tools/sizes.py` prints the offenders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sizes():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("sizes", ROOT / "tools" / "sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sizes", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_no_module_or_function_is_over_the_limits() -> None:
    sizes = _sizes()
    found = sizes.offenders(ROOT)
    assert not found, "over the size limits (see tools/sizes.py):\n" + "\n".join(map(str, found))


def test_the_allow_list_stays_short_and_only_names_modules_that_exist() -> None:
    sizes = _sizes()
    assert len(sizes.ALLOWED) <= 2
    for path in sizes.ALLOWED:
        assert (ROOT / path).is_file(), f"{path} is gone: take it off the allow-list"


def test_a_mapping_of_named_options_counts_as_one_line(tmp_path: Path) -> None:
    sizes = _sizes()
    package = tmp_path / "core"
    package.mkdir()
    options = "\n".join(f'        "option_{i}": {i},' for i in range(80))
    code = "\n".join(f"    x{i} = {i}" for i in range(70))
    (package / "m.py").write_text(
        f"def config():\n    return {{\n{options}\n    }}\n\n\ndef long():\n{code}\n",
        encoding="utf-8",
    )
    found = [str(o) for o in sizes.offenders(tmp_path)]
    assert len(found) == 1 and found[0].endswith("core/m.py:long"), found
