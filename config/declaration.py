"""How one setting is declared: its environment name, kind, default and help, as field metadata."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from config.kinds import File, Kind

T = TypeVar("T")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what is expected."""

    def __init__(self, variable: str, expected: str, got: str | None = None) -> None:
        self.variable = variable
        self.expected = expected
        shown = "" if got is None else f" (got {got!r})"
        super().__init__(f"{variable}: expected {expected}{shown}")


@dataclass(frozen=True)
class Default:
    """A default computed from the settings declared above it; `shown` is how the docs say it."""

    shown: str
    compute: Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class FromFile:
    """A secret whose default is the content of the file named by the setting `path_field`."""

    path_field: str
    shown: str


@dataclass(frozen=True)
class Declaration:
    """One setting: where it comes from, what it accepts, its default, one line of help."""

    env: str
    kind: Kind[Any]
    default: str | Default | FromFile | None
    help: str
    secret: bool = False
    # For NAME_FILE: the variable NAME giving the same secret inline (at most one of them is set).
    file_of: str | None = None
    # A variable another tool defines that wins over ours (PROMETHEUS_MULTIPROC_DIR).
    overridden_by: str | None = None
    # The value when the setting is unset and has no default.
    empty: Any = None
    name: str = ""

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return "unset"
        if isinstance(self.default, str):
            return f"`{self.default}`"
        return self.default.shown


def setting(
    env: str,
    kind: Kind[T],
    default: str | Default | FromFile | None,
    help: str,
    **more: Any,
) -> T:
    """A Settings field with its declaration as metadata (typed as the value it will hold)."""
    declaration = Declaration(env, kind, default, help, **more)
    # A secret stays out of repr(settings), so it can't reach a log line or a traceback.
    made = field(repr=not declaration.secret, metadata={"setting": declaration})
    return made  # type: ignore[no-any-return]


def secret_file(name: str, inline: str, default_file: str | None, what: str) -> Path | None:
    """NAME_FILE: the file a secret is read from unless NAME gives it inline."""
    default = (
        None
        if default_file is None
        else Default(
            f"`$NEWSFLASH_VAR_DIR/{default_file}`", lambda v: f"{v['var_dir']}/{default_file}"
        )
    )
    return setting(name, File(), default, f"file holding {what}", file_of=inline)
