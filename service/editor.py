"""Newsroom pages (/editor): login, compose, history and reports."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("editor", __name__, url_prefix="/editor")


@bp.get("/login")
def login() -> str:
    return "Newsroom login"
