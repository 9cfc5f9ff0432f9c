"""How settings are read: the environment and an optional .env file, each declaration in
order (a default may use the values above it), files named by other settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

from config.declaration import Declaration, Default, FromFile, SettingsError

T = TypeVar("T")


def var_file(name: str) -> Callable[[Mapping[str, Any]], str | None]:
    def read(values: Mapping[str, Any]) -> str | None:
        path = Path(values["var_dir"]) / name
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8").strip() or None

    return read


def uvloop_if_installed(values: Mapping[str, Any]) -> str:
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def read_environment(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> dict[str, str]:
    """The variables in effect: an optional .env file, with the real environment winning."""
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        # No ${VAR} expansion: a secret containing "$" is taken as written, as before.
        values = dotenv_values(env_file, interpolate=False)
        env.update({k: v for k, v in values.items() if v is not None})
    env.update(os.environ if environ is None else environ)
    return env


class Loader:
    """One pass over the declarations, in order, so a default can use the values above it."""

    def __init__(
        self, env: Mapping[str, str], declared: tuple[Declaration, ...], missing_files_ok: bool
    ) -> None:
        self.env = env
        self.declared = declared
        self.missing_files_ok = missing_files_ok
        self.values: dict[str, Any] = {}
        self.given: set[str] = set()

    def raw(self, name: str | None) -> str | None:
        value = self.env.get(name) if name else None
        return None if value is None or value.strip() == "" else value.strip()

    def load(self, build: Callable[..., T]) -> T:
        for d in self.declared:
            self.values[d.name] = self.value(d)
        return build(**self.values)

    def value(self, d: Declaration) -> Any:
        variable = d.env
        if d.overridden_by and self.raw(d.overridden_by) is not None:
            variable = d.overridden_by
        text = self.raw(variable)
        if d.file_of is not None and self.raw(d.file_of) is not None:
            if text is not None:
                raise SettingsError(d.env, f"unset when {d.file_of} is set (one or the other)")
            return None
        if text is not None:
            self.given.add(d.name)
            return self.parse(d, variable, text)
        if isinstance(d.default, str):
            return self.parse(d, d.env, d.default)
        if isinstance(d.default, Default):
            computed = d.default.compute(self.values)
            return d.empty if computed is None else self.parse(d, d.env, computed)
        if isinstance(d.default, FromFile):
            return self.from_file(d, d.default.path_field)
        return d.empty

    def from_file(self, d: Declaration, path_field: str) -> Any:
        path: Path | None = self.values[path_field]
        variable = next(x.env for x in self.declared if x.name == path_field)
        if path is None:
            return d.empty
        if not path.exists() and (path_field not in self.given or self.missing_files_ok):
            return d.empty
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(variable, "a readable file", f"{path}: {exc.strerror}") from None
        return self.parse(d, variable, text) if text else d.empty

    def parse(self, d: Declaration, variable: str, text: str) -> Any:
        try:
            return d.kind.parse(text)
        except ValueError as exc:
            # Never echo a secret, not even a malformed one.
            raise SettingsError(variable, str(exc), None if d.secret else text) from None
