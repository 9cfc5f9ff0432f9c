"""Ops pages and APIs: /ops, /api/v1/ops/queues, /metrics."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ops", __name__)
