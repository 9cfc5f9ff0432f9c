"""The settings as people read them come from the declaration: `newsflash settings`, the docs."""

from __future__ import annotations

import re
from pathlib import Path

from config.listing import effective_lines, markdown_table, table_in
from config.settings import declarations, load_settings
from tests.support.services import ROOT

REGENERATE = "newsflash settings --write docs/settings.md"


def test_the_settings_table_is_the_declaration() -> None:
    document = "docs/settings.md"
    table = table_in((ROOT / document).read_text(encoding="utf-8"))
    assert table is not None, f"{document} has no generated settings table"
    assert table == markdown_table(), (
        f"{document}'s settings table differs from config/settings.py; regenerate it with "
        f"`{REGENERATE}`"
    )


# The settings ../shared/CONTRACT.md fixes: the README's short table names each.
CONTRACT_SETTINGS = (
    "NEWSFLASH_DATABASE_URL",
    "NEWSFLASH_REDIS_URL",
    "NEWSFLASH_BROKER_URL",
    "NEWSFLASH_VAPID_PRIVATE_KEY",
    "NEWSFLASH_VAPID_SUBJECT",
    "NEWSFLASH_SECRET_KEY",
    "NEWSFLASH_PUBLIC_ORIGINS",
    "NEWSFLASH_PUSH_HOSTS",
    "NEWSFLASH_ALLOW_LOOPBACK_PUSH",
    "NEWSFLASH_TOPICS",
    "NEWSFLASH_DEFAULT_TTL",
    "NEWSFLASH_CMS_WEBHOOK_SECRET",
    "NEWSFLASH_ALERT_WEBHOOK",
)


def test_the_readme_names_real_settings_and_the_contracts() -> None:
    """The README keeps a short hand-written table of the settings set first (the full one is
    docs/settings.md): every name in it must be declared, and the contract's are all there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table_in(readme) is None, "the full table lives in docs/settings.md only"
    declared = {d.env for d in declarations()}
    named = set(re.findall(r"`(NEWSFLASH_[A-Z_]+)`", readme))
    unknown = {n for n in named if n not in declared and n.removesuffix("_FILE") not in declared}
    assert not unknown, f"README names settings that do not exist: {sorted(unknown)}"
    assert set(CONTRACT_SETTINGS) <= named


def test_every_setting_is_in_the_table() -> None:
    table = markdown_table()
    for d in declarations():
        assert f"| `{d.env}` |" in table


def test_effective_settings_mask_every_secret(tmp_path: Path, vapid_pem: str) -> None:
    key_file = tmp_path / "vapid.pem"
    key_file.write_text(vapid_pem)
    secrets = {
        "NEWSFLASH_SECRET_KEY": "app-secret-0123456789abcdef",
        "NEWSFLASH_CMS_WEBHOOK_SECRET": "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tzLTMyYnl0ZXM=",
        "NEWSFLASH_METRICS_TOKEN": "metrics-token-0123456789",
        "NEWSFLASH_API_TOKEN": "nf_api-token-0123456789",
    }
    env = {
        **secrets,
        "NEWSFLASH_VAR_DIR": str(tmp_path),
        "NEWSFLASH_VAPID_PRIVATE_KEY_FILE": str(key_file),
        "NEWSFLASH_DATABASE_URL": "postgresql+psycopg://newsflash:db-pass-123@127.0.0.1/nf",
        "NEWSFLASH_REDIS_URL": "redis://:redis-pass-456@127.0.0.1:6379/0",
        "NEWSFLASH_BROKER_URL": "amqp://guest:amqp-pass-789@127.0.0.1:5672//",
        "NEWSFLASH_ALERT_WEBHOOK": "https://hooks.example.com/services/T0/B0/hook-secret",
    }
    text = "\n".join(effective_lines(load_settings(environ=env, env_file=None), env))
    hidden = [*secrets.values(), "db-pass-123", "redis-pass-456", "amqp-pass-789", "hook-secret"]
    for secret in hidden:
        assert secret not in text
    assert "PRIVATE KEY" not in text
    assert "NEWSFLASH_SECRET_KEY=****\n" in text
    assert "NEWSFLASH_VAPID_PRIVATE_KEY=****  # default" in text
    assert "NEWSFLASH_DATABASE_URL=postgresql+psycopg://newsflash:****@127.0.0.1/nf\n" in text
    assert "NEWSFLASH_ALERT_WEBHOOK=https://hooks.example.com/****\n" in text
    assert "NEWSFLASH_BATCH_SIZE=1000  # default" in text


def test_defaults_are_written_once() -> None:
    """Settings fields carry no default of their own: only the declaration has one."""
    from dataclasses import MISSING, fields

    from config.settings import Settings

    for f in fields(Settings):
        assert "setting" in f.metadata, f"{f.name} is not declared"
        assert f.default is MISSING and f.default_factory is MISSING, f.name
    assert len({d.env for d in declarations()}) == len(declarations())
