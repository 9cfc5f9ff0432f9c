"""docker-compose.yml: every service runs a real entry point with settings the app knows."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import known_variables
from service.cli import _load_extras, build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {
    name: svc
    for name, svc in SERVICES.items()
    if svc.get("build") == "." or svc.get("image") == "newsflash:latest"
}


def _cli_commands() -> set[str]:
    _load_extras()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)  # type: ignore[attr-defined]


def _commands_in(command: Any) -> list[list[str]]:
    """The program invocations a compose `command` runs (unwrapping sh -c)."""
    argv = command if isinstance(command, list) else shlex.split(command)
    if argv[:2] == ["sh", "-c"]:
        script = argv[2].replace("$$", "$")
        return [
            shlex.split(part.strip().removeprefix("exec "))
            for part in re.split(r"&&|;", script)
            if part.strip()
        ]
    return [argv]


def test_our_services_are_all_there() -> None:
    assert {"redis", "postgres", "web", "worker", "beat", "flower"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_names_a_real_entry_point(name: str) -> None:
    commands = _cli_commands()
    invocations = _commands_in(SERVICES[name]["command"])
    assert invocations
    for argv in invocations:
        if argv[0] == "newsflash":
            assert argv[1] in commands, f"{name}: `newsflash {argv[1]}` is not a command"
            parser = build_parser()
            parser.parse_args(
                [a for a in argv[1:] if "$" not in a] if argv[1] != "init" else ["init"]
            )
        elif argv[0] == "celery":
            module, _, attr = argv[argv.index("-A") + 1].partition(":")
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
            assert re.search(rf"^{attr or 'app'} = ", source, re.M), (
                f"{name}: {module} has no {attr or 'app'}"
            )
        else:
            pytest.fail(f"{name}: runs {argv[0]!r}, not a project entry point")


@pytest.mark.parametrize("name", sorted(OURS))
def test_env_names_match_the_settings(name: str) -> None:
    known = known_variables()
    env = SERVICES[name].get("environment", {})
    for key in env:
        if key.startswith("NEWSFLASH_"):
            assert key in known, f"{name}: {key} is not a setting Newsflash reads"


def test_redis_keeps_tasks() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_long_running_services_have_health_checks() -> None:
    for name, svc in SERVICES.items():
        if name == "init":
            continue
        assert "healthcheck" in svc, f"{name} has no health check"


def test_flower_is_recent_and_private() -> None:
    flower = SERVICES["flower"]
    assert "--basic-auth" in " ".join(flower["command"])
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), "Flower must not be published publicly"
    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"flower>=(\d+)\.(\d+)", pyproject)
    assert match and (int(match[1]), int(match[2])) >= (2, 2)
    assert '".[ops]"' in (ROOT / "Dockerfile").read_text()
