"""The WSGI entry point: `newsflash web` (service/server.py) imports it in each web process."""

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

# One JSON line per event, redacted, for the web processes too (Celery sets up its own).
configure_logging(_settings.log_level, _settings.log_json)
app = create_app(_settings)
# Each web process imports this module after the fork: connect there, not on a request.
app.extensions["newsflash"].warm_up()
