"""The WSGI entry point: `newsflash web` (service/server.py) imports it in each web process."""

from __future__ import annotations

import sys

from config.settings import SettingsError, load_settings
from core.adapters import db_holders
from core.adapters.logs import configure_logging
from core.bootstrap import StartupError, load_signer
from service.app import create_app

GUNICORN_BOOT_ERROR = 3

try:
    _settings = load_settings()
    load_signer(_settings)
except (SettingsError, StartupError) as exc:
    print(f"newsflash: {exc}", file=sys.stderr)
    # In a gunicorn worker, 3 is "failed to boot": the master stops instead of forking a new
    # worker that fails the same way every second (`newsflash web` checks before gunicorn starts).
    raise SystemExit(GUNICORN_BOOT_ERROR if "gunicorn" in sys.argv[0] else 2) from None

# One JSON line per event, redacted, for the web processes too (Celery sets up its own).
configure_logging(_settings.log_level, _settings.log_json)
# Held for the process's life: `newsflash restore` refuses while any web process runs.
db_holders.hold(_settings.database_url, "web")
app = create_app(_settings)
# Each web process imports this module after the fork: connect there, not on a request.
app.extensions["newsflash"].warm_up()
