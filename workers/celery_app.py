"""The module-level Celery app for `celery -A workers.celery_app worker|beat`."""

from __future__ import annotations

import sys

from celery import Celery

from config.settings import SettingsError, load_settings
from workers.factory import make_celery


def _module_app() -> Celery:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"newsflash: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    application = make_celery(settings)
    application.set_current()
    return application


app = _module_app()
