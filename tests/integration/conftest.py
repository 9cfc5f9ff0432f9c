"""Fixtures the store-level integration modules share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from core.adapters import migrate
from core.adapters.sql import make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on this test's database (SQLite file or fresh PostgreSQL database)."""
    eng = make_engine(database_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
