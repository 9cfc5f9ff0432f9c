"""What every `newsflash` command module shares: the one-line refusal, the composition root,
and the private files the CLI writes."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from core.bootstrap import Container

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """A one-line message for the terminal; exit status 2."""


def container(settings: Settings) -> Container:
    # Imported here, not above: `newsflash --help` must not load SQLAlchemy, Redis and Celery.
    from core.bootstrap import Container

    return Container(settings)


def write_secret(path: Path, content: str) -> None:
    """A new file only its owner can read (0600); an existing one is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def dev_tool_missing(command: str) -> str:
    # The production image leaves standin/ and bench/ out (see the Dockerfile).
    return f"{command} is a development tool, not in this image"
