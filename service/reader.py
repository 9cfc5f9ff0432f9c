"""Reader pages: the demo article, the widget, the service worker, the manage page."""

from __future__ import annotations

import hashlib
import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from service.choice_texts import choice_texts
from service.texts import chrome_texts, language_switches, manage_texts, request_language

bp = Blueprint("reader", __name__)
SAMPLE_STORY = Path(__file__).resolve().parent / "sample" / "article.json"


@cache
def sample_story() -> dict[str, Any]:
    """The bundled demo story (written for Newsflash; its people and places are fictional)."""
    story: dict[str, Any] = json.loads(SAMPLE_STORY.read_text(encoding="utf-8"))
    return story


def site_chrome(lang: str, manage_url: str) -> dict[str, str]:
    """What the demo site shows around a reader page (navigation, dateline, footer) in `lang`;
    `manage_url` is where its alert links go."""
    story = sample_story()
    local: dict[str, str] = story.get("translations", {}).get(lang, {})
    return {
        **chrome_texts(lang),
        "dateline": local.get("dateline", story["published_label"].split(",")[0]),
        "note": local.get("note", story["note"]),
        "manage": manage_url,
    }


@bp.get("/")
def home() -> str:
    # The sample story is English, so is its page: its alert links let /manage pick the
    # reader's language.
    return render_template(
        "reader/article.html",
        settings=current_app.extensions["newsflash"].settings,
        story=sample_story(),
        active="news",
        chrome=site_chrome("en", url_for("reader.manage")),
    )


@bp.get("/manage")
def manage() -> str:
    # ?lang= (or the browser's language) until manage.js knows this browser's subscription;
    # then the page speaks the language stored for the reader's alerts.
    settings = current_app.extensions["newsflash"].settings
    lang = request_language(settings)
    return render_template(
        "reader/manage.html",
        settings=settings,
        story=sample_story(),
        active="alerts",
        lang=lang,
        chrome=site_chrome(lang, url_for("reader.manage", lang=lang)),
        texts=manage_texts(settings, lang),
        switches=language_switches(lang),
        choices=choice_texts(lang),
        topics=[(t.slug, t.name_in(lang)) for t in settings.topics],
    )


def _static_js(name: str, max_age: int) -> Response:
    response = send_from_directory(
        current_app.static_folder or "static", name, mimetype="text/javascript", max_age=max_age
    )
    return response


# The pages' side of the conversation with the service worker lives once in the tree
# (static/worker.client.js) and is served at the head of each page script, the two inside one
# function: the widget stays the one file publishers embed, and defines no global.
WORKER_CLIENT = "worker.client.js"


@lru_cache(maxsize=4)
def _joined(folder: str, name: str, stamps: tuple[int, int]) -> tuple[bytes, str]:
    """The page script with the worker client before it, and its ETag (re-read when either
    file changes: `stamps` are their modification times)."""
    parts = [(Path(folder) / part).read_text(encoding="utf-8") for part in (WORKER_CLIENT, name)]
    body = ("(function () {\n" + parts[0] + "\n" + parts[1] + "})();\n").encode()
    return body, hashlib.sha256(body).hexdigest()[:32]


def _page_js(name: str, max_age: int) -> Response:
    folder = Path(current_app.static_folder or "static")
    stamps = ((folder / WORKER_CLIENT).stat().st_mtime_ns, (folder / name).stat().st_mtime_ns)
    body, etag = _joined(str(folder), name, stamps)
    response = current_app.response_class(body, mimetype="text/javascript")
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.set_etag(etag)
    response.make_conditional(request)  # a 304 for a matching If-None-Match, in place
    return response


@bp.get("/newsflash.js")
def widget() -> Response:
    return _page_js("newsflash.js", 300)


@bp.get("/manage.js")
def manage_script() -> Response:
    return _page_js("manage.js", 300)


@bp.get("/manage.choices.js")
def manage_choices_script() -> Response:
    return _static_js("manage.choices.js", 300)


@bp.get("/sw.js")
def service_worker() -> Response:
    # The worker must be re-checked by browsers promptly, and may control the whole origin.
    response = _static_js("sw.js", 0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


def _icon(name: str, size: int, purpose: str) -> dict[str, str]:
    return {
        "src": url_for("static", filename=f"icons/{name}"),
        "sizes": f"{size}x{size}",
        "type": "image/png",
        "purpose": purpose,
    }


@bp.get("/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest: iOS and iPadOS deliver web push only to a Home Screen web app
    whose manifest says standalone."""
    settings = current_app.extensions["newsflash"].settings
    response = jsonify(
        {
            "id": "/",
            "name": settings.site_name,
            "short_name": settings.site_short_name,
            "lang": settings.default_lang,
            "start_url": "/",
            "scope": "/",
            "display": "standalone",
            "theme_color": settings.theme_color,
            "background_color": "#ffffff",
            "icons": [
                _icon("icon-192.png", 192, "any"),
                _icon("icon-512.png", 512, "any"),
                _icon("icon-maskable-512.png", 512, "maskable"),
            ],
        }
    )
    response.mimetype = "application/manifest+json"
    response.cache_control.max_age = 3600
    return response
