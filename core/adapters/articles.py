"""Fetching an article page for "Prefill from article": own origins only, bounded in time and size.

The connection rules are the feed fetcher's (core/adapters/fetch.py): redirects only onto our
origins, every resolved address public (loopback only with NEWSFLASH_ALLOW_LOOPBACK_PUSH), the
whole request cut off at its deadline.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from core.adapters.fetch import Deadline, GuardedConnect, Lookup, RefusedAddress, guarded_opener
from core.adapters.fetch import system_lookup as _system_lookup
from core.alerts import check_public_url
from core.errors import ValidationError
from core.newsroom import MAX_ARTICLE_BYTES

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHUNK = 16 * 1024
_LATE = "the article page did not answer in time"


class HttpArticleFetcher:
    """ArticleFetcher on urllib: no proxies from the environment, no cookies, GET only."""

    def __init__(
        self,
        origins: Sequence[str],
        *,
        allow_loopback: bool,
        timeout_s: float = 3.0,
        deadline_s: float = 5.0,
        max_bytes: int = MAX_ARTICLE_BYTES,
        lookup: Lookup | None = None,
    ) -> None:
        self.origins = tuple(origins)
        self.allow_loopback = allow_loopback
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.lookup = lookup or _system_lookup

    def fetch(self, url: str) -> str:
        # Checked here too, so no caller can make this fetch anything but our own pages.
        check_public_url(url, self.origins, "url")
        with Deadline(self.deadline_s) as deadline:
            try:
                page = self._fetch(url, deadline)
            except ValidationError:
                if deadline.expired:
                    raise ValidationError(_LATE, "url") from None
                raise
            if deadline.expired:  # cut mid-headers, http.client may take what came as the end
                raise ValidationError(_LATE, "url")
            return page

    def _fetch(self, url: str, deadline: Deadline) -> str:
        connect = GuardedConnect(self.lookup, self.allow_loopback, deadline)
        opener = guarded_opener(self.origins, connect)
        request = urllib.request.Request(  # noqa: S310 - http(s) on our own origins, checked above
            url,
            headers={
                "User-Agent": "Newsflash-Prefill/1",
                "Accept": "text/html,application/xhtml+xml",
            },
        )
        started = time.monotonic()
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                return self._read(response, started)
        except urllib.error.HTTPError as exc:
            raise ValidationError(f"the article answered HTTP {exc.code}", "url") from None
        except TimeoutError:
            raise ValidationError(_LATE, "url") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ValidationError(_LATE, "url") from None
            if isinstance(exc.reason, RefusedAddress):
                raise ValidationError(f"refused: {exc.reason}", "url") from None
            raise ValidationError("could not reach the article page", "url") from None
        except OSError:
            raise ValidationError("could not read the article page", "url") from None

    def _read(self, response: Any, started: float) -> str:
        content_type = response.headers.get_content_type()
        if content_type not in _HTML_TYPES:
            raise ValidationError(f"the article is {content_type}, not an HTML page", "url")
        charset = response.headers.get_content_charset() or "utf-8"
        chunks: list[bytes] = []
        size = 0
        while size < self.max_bytes:
            if time.monotonic() - started > self.deadline_s:
                raise ValidationError(_LATE, "url")
            # read1: one receive at a time, so a trickling server meets the deadline too.
            chunk = response.read1(min(_CHUNK, self.max_bytes - size))
            if not chunk:
                break
            tail = chunks[-1][-8:] if chunks else b""
            chunks.append(chunk)
            size += len(chunk)
            if b"</head" in (tail + chunk).lower():
                break  # the tags we want are all in the head
        try:
            return b"".join(chunks).decode(charset, errors="replace")
        except LookupError:
            return b"".join(chunks).decode("utf-8", errors="replace")
