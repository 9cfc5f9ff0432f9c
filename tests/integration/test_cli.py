"""The `newsflash` command as an operator meets it: set-up, one-line failures, tokens."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run(
    args: list[str], env: dict[str, str], timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLASH_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture
def var_env(tmp_path: Path) -> dict[str, str]:
    return {
        "NEWSFLASH_VAR_DIR": str(tmp_path / "var"),
        "NEWSFLASH_DATABASE_URL": f"sqlite:///{tmp_path}/var/newsflash.db",
    }


def test_init_creates_private_keys_once(var_env: dict[str, str], tmp_path: Path) -> None:
    first = run(["init"], var_env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "vapid_private.pem" in first.stdout
    var = tmp_path / "var"
    for name in ("vapid_private.pem", "secret_key", "cms_webhook_secret", "vapid_subject"):
        mode = stat.S_IMODE((var / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    key = (var / "vapid_private.pem").read_text()
    second = run(["init"], var_env)
    assert second.returncode == 0
    assert "created" not in second.stdout and second.stdout.count("kept") == 4
    assert (var / "vapid_private.pem").read_text() == key
    assert "PRIVATE KEY" not in first.stdout + second.stdout


def _one_line_failure(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("newsflash: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_a_wrong_database_url_stops_start_up_with_one_line(var_env: dict[str, str]) -> None:
    run(["init"], var_env)
    result = run(["web"], {**var_env, "NEWSFLASH_DATABASE_URL": "mysql://db/newsflash"})
    _one_line_failure(result, "NEWSFLASH_DATABASE_URL")


def test_an_unreachable_database_fails_migrations_with_one_line(var_env: dict[str, str]) -> None:
    # A port on loopback where nothing listens: refused at once, never a remote address.
    url = "postgresql+psycopg://postgres@127.0.0.1:9/newsflash"
    result = run(["db", "upgrade"], {**var_env, "NEWSFLASH_DATABASE_URL": url})
    _one_line_failure(result, "NEWSFLASH_DATABASE_URL")


def test_an_unreadable_or_invalid_vapid_key_stops_start_up_with_one_line(
    var_env: dict[str, str], tmp_path: Path
) -> None:
    missing = run(
        ["web"], {**var_env, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(tmp_path / "nope.pem")}
    )
    _one_line_failure(missing, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    bad = run(["worker"], {**var_env, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(garbage)})
    _one_line_failure(bad, "NEWSFLASH_VAPID_PRIVATE_KEY_FILE")
    assert "not a key" not in bad.stderr


def test_token_create_prints_the_token_alone_on_the_last_line(var_env: dict[str, str]) -> None:
    assert run(["db", "upgrade"], var_env).returncode == 0
    result = run(["token", "create", "--name", "cms", "--role", "editor"], var_env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.rstrip("\n").splitlines()[-1]
    assert token.startswith("nf_") and " " not in token and len(token) > 30
    listed = run(["token", "list"], var_env)
    assert "cms" in listed.stdout and token not in listed.stdout


def test_every_command_has_help() -> None:
    top = run(["--help"], {})
    assert top.returncode == 0
    for command in (
        "init",
        "db",
        "user",
        "token",
        "send",
        "status",
        "alerts",
        "push-standin",
        "demo-subscribers",
        "bench",
        "settings",
    ):
        assert command in top.stdout, command
        assert run([command, "--help"], {}).returncode == 0, command


def test_settings_prints_the_effective_values_with_secrets_masked(
    var_env: dict[str, str],
) -> None:
    env = {
        **var_env,
        "NEWSFLASH_DATABASE_URL": "postgresql://newsflash:db-pass-123@127.0.0.1:9/nf",
        "NEWSFLASH_SECRET_KEY": "app-secret-0123456789abcdef",
        "NEWSFLASH_BATCH_SIZE": "250",
    }
    result = run(["settings"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "NEWSFLASH_BATCH_SIZE=250" in lines
    assert "NEWSFLASH_DATABASE_URL=postgresql+psycopg://newsflash:****@127.0.0.1:9/nf" in lines
    assert "NEWSFLASH_SECRET_KEY=****" in lines
    assert "NEWSFLASH_DEFAULT_TTL=3600  # default" in lines
    assert "db-pass-123" not in result.stdout and "app-secret" not in result.stdout


def test_a_malformed_rate_limit_stops_every_command(var_env: dict[str, str]) -> None:
    """It used to switch the limit off without a word."""
    env = {**var_env, "NEWSFLASH_RATE_LIMIT_LOGIN": "ten per minute"}
    for argv in (["settings"], ["db", "upgrade"], ["token", "list"], ["beat"]):
        _one_line_failure(run(argv, env), "NEWSFLASH_RATE_LIMIT_LOGIN: expected limits like")
