"""The WSGI entry point for gunicorn: `gunicorn service.wsgi:app`."""

from __future__ import annotations

import sys

from config.settings import SettingsError, load_settings
from core.adapters.logs import configure_logging
from core.bootstrap import StartupError, load_signer
from service.app import create_app

try:
    _settings = load_settings()
    load_signer(_settings)
except (SettingsError, StartupError) as exc:
    print(f"newsflash: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

# One JSON line per event, redacted, for gunicorn's processes too (Celery sets up its own).
configure_logging(_settings.log_level, _settings.log_json)
app = create_app(_settings)
# gunicorn imports this module in each worker after the fork: connect there, not on a request.
app.extensions["newsflash"].warm_up()
