"""Where a redirect built from request input may go: only a path on this site."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from werkzeug.urls import iri_to_uri

MAX_TARGET = 2000
# What browsers drop or rewrite before resolving a URL (WHATWG URL parser): tab, newline and
# CR are removed anywhere, leading C0 controls and spaces are stripped, and a backslash is a
# slash in http(s) URLs. Any of these, raw or percent-encoded, means the target is refused
# rather than normalised, so no reading of it can leave the site.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_SAFE_CHARS = "/?&=#%:@!$'()*+,;~-._"


def safe_next(target: object) -> str | None:
    """The target as an ASCII path on this site, or None when a browser could go elsewhere."""
    if not isinstance(target, str) or not target or len(target) > MAX_TARGET:
        return None
    decoded = target
    for _ in range(3):  # double and triple encodings decode to what a later hop would see
        if _CONTROL.search(decoded) or not _is_local_path(decoded):
            return None
        decoded = unquote(decoded)
    if _CONTROL.search(decoded) or not _is_local_path(decoded):
        return None
    # Percent-encode what is not plain ASCII so the Location header is always well formed, in
    # the form Werkzeug sends it (an empty "?" or "#" dropped), so the kept path is the Location.
    kept = iri_to_uri(quote(target, safe=_SAFE_CHARS))
    return kept if _is_local_path(kept) and not _CONTROL.search(kept) else None


def _is_local_path(value: str) -> bool:
    # "/x" is a path; "//host" and "/\\host" are another site; anything else has a scheme
    # ("javascript:", "HTTPS:") or is relative to the current page.
    return value.startswith("/") and not value.startswith("//")
