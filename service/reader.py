"""Reader pages: the demo article, the widget, the service worker, the manage page."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, send_from_directory

bp = Blueprint("reader", __name__)


@bp.get("/")
def home() -> str:
    return render_template(
        "reader/article.html", settings=current_app.extensions["newsflash"].settings
    )


@bp.get("/manage")
def manage() -> str:
    return render_template(
        "reader/manage.html", settings=current_app.extensions["newsflash"].settings
    )


def _static_js(name: str, max_age: int) -> Response:
    response = send_from_directory(
        current_app.static_folder or "static", name, mimetype="text/javascript", max_age=max_age
    )
    return response


@bp.get("/newsflash.js")
def widget() -> Response:
    return _static_js("newsflash.js", 300)


@bp.get("/sw.js")
def service_worker() -> Response:
    # The worker must be re-checked by browsers promptly, and may control the whole origin.
    response = _static_js("sw.js", 0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response
