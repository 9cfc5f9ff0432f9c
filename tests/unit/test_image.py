"""The production image ships the service and leaves the stand-ins and the bench out."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"standin", "bench"}
SERVICE = {"cli", "config", "core", "service", "workers"}
PIP_WHEEL = [
    sys.executable,
    "-m",
    "pip",
    "wheel",
    "--no-deps",
    "--no-build-isolation",
    "--no-index",
]


def _copy_sources() -> list[str]:
    """The sources of every COPY in the Dockerfile (the last word is the destination)."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0].upper() in {"COPY", "ADD"}:
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _ignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _is_ignored(relative: Path) -> bool:
    return any(
        fnmatch.fnmatch(relative.as_posix(), pattern)
        or fnmatch.fnmatch(relative.name, pattern.removeprefix("**/"))
        for pattern in _ignored()
    )


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/app as the Dockerfile builds it: the COPY sources, minus what .dockerignore drops."""
    app = tmp_path_factory.mktemp("app")
    for source in _copy_sources():
        for path in (
            sorted((ROOT / source).rglob("*")) if (ROOT / source).is_dir() else [ROOT / source]
        ):
            relative = path.relative_to(ROOT)
            if path.is_file() and not any(_is_ignored(p) for p in (relative, *relative.parents)):
                (app / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, app / relative)
    return app


def test_the_build_context_and_the_copies_leave_the_development_tools_out() -> None:
    assert set(_ignored()) >= DEV_TOOLS
    copied = {source.strip("./").split("/")[0] for source in _copy_sources()}
    assert copied >= SERVICE
    assert not copied & DEV_TOOLS
    assert "" not in copied, "COPY . would take the whole checkout"


def test_the_wheel_the_image_installs_has_the_service_and_no_development_tool(
    image_tree: Path, tmp_path: Path
) -> None:
    # What `pip install ".[ops]"` in the Dockerfile builds, offline.
    subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(tmp_path), str(image_tree)],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("newsflash-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert packages == SERVICE
    assert "service/templates/editor/report.html" in names
    assert "core/adapters/migrations/env.py" in names


@pytest.mark.parametrize(
    ("argv", "tool"),
    [(["push-standin"], "push-standin"), (["bench", "fanout"], "bench")],
    ids=["push-standin", "bench"],
)
def test_the_image_cli_names_a_missing_tool_in_one_line(
    image_tree: Path, tmp_path: Path, argv: list[str], tool: str
) -> None:
    # -S: no site hooks, so the checkout's editable install cannot lend its standin/ and bench/.
    paths = sysconfig.get_paths()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(image_tree), paths["purelib"], paths["platlib"]]),
        "NEWSFLASH_VAR_DIR": str(tmp_path / "var"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import sys; from cli.main import main; sys.exit(main())",
            *argv,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"newsflash: {tool} is a development tool, not in this image\n"
