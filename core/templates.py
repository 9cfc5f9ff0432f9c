"""Alert templates: saved formats ("BREAKING:", "LIVE:", "UPDATE:") an editor picks in one click.

A template is a headline prefix plus the topics, urgency and TTL that go with it. Applied to an
API body, what the body says itself wins; only the prefix is always added (once).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.alerts import MAX_TTL_S, MIN_TTL_S
from core.errors import ValidationError
from core.inputs import check_text, whole_number
from core.model import Urgency

MAX_PREFIX = 40
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


@dataclass(frozen=True)
class Template:
    id: int
    name: str  # what the API's "template" field names, lower-case
    prefix: str  # put before the headline, e.g. "BREAKING: "
    topics: tuple[str, ...]  # () keeps the editor's own choice
    urgency: Urgency
    ttl_s: int
    updated_at: float = 0.0
    updated_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "topics": list(self.topics),
            "urgency": self.urgency.value,
            "ttl": self.ttl_s,
        }


@dataclass(frozen=True)
class TemplateFields:
    """A validated create or edit request."""

    name: str
    prefix: str
    topics: tuple[str, ...]
    urgency: Urgency
    ttl_s: int


class TemplateStore(Protocol):
    def list_templates(self) -> list[Template]: ...
    def get_template(self, template_id: int) -> Template | None: ...
    def template_named(self, name: str) -> Template | None: ...
    def create_template(self, fields: TemplateFields, actor: str | None, now: float) -> Template:
        """Raises Conflict('name') if the name is taken."""
        ...

    def update_template(
        self, template_id: int, fields: TemplateFields, actor: str | None, now: float
    ) -> Template | None:
        """None if there is no such template; Conflict('name') if the new name is taken."""
        ...

    def delete_template(self, template_id: int) -> bool: ...


def parse_template(body: Mapping[str, Any], known_topics: Collection[str]) -> TemplateFields:
    """The admin form (or JSON) → TemplateFields; every refusal names its field."""
    name = body.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name.strip().lower()):
        raise ValidationError(
            "name: 1 to 32 lower-case letters, digits or dashes (the API's template name)",
            "name",
        )
    prefix = body.get("prefix", "")
    if not isinstance(prefix, str):
        raise ValidationError("prefix must be text", "prefix")
    prefix = check_text(prefix.strip(), "prefix")
    if len(prefix) > MAX_PREFIX:
        raise ValidationError(f"prefix: at most {MAX_PREFIX} characters", "prefix")
    topics = body.get("topics", [])
    if not isinstance(topics, list | tuple) or not all(isinstance(x, str) for x in topics):
        raise ValidationError("topics must be a list of topic slugs", "topics")
    unknown = [x for x in topics if x not in known_topics]
    if unknown:
        raise ValidationError(f"unknown topic {unknown[0]!r}", "topics")
    try:
        urgency = Urgency(str(body.get("urgency", "normal")))
    except ValueError:
        raise ValidationError(
            "urgency must be one of very-low, low, normal, high", "urgency"
        ) from None
    ttl = body.get("ttl")
    if isinstance(ttl, str) and (seconds := whole_number(ttl.strip(), 9)) is not None:
        ttl = seconds
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise ValidationError(f"ttl must be whole seconds from {MIN_TTL_S} to {MAX_TTL_S}", "ttl")
    return TemplateFields(
        name.strip().lower(),
        prefix + " " if prefix else "",
        tuple(dict.fromkeys(topics)),
        urgency,
        ttl,
    )


def with_prefix(title: str, prefix: str, other_prefixes: Collection[str] = ()) -> str:
    """The headline with the template's prefix once (another template's prefix is replaced)."""
    text = title.lstrip()
    for known in sorted({prefix, *other_prefixes}, key=len, reverse=True):
        if known.strip() and text.upper().startswith(known.strip().upper()):
            text = text[len(known.strip()) :].lstrip()
            break
    return prefix + text if prefix else text


def apply_to_body(body: Mapping[str, Any], template: Template) -> dict[str, Any]:
    """An API body with the template filled in: the body's own topics, urgency and ttl win."""
    out = {k: v for k, v in body.items() if k != "template"}
    title = body.get("title")
    if isinstance(title, str) and title.strip():
        out["title"] = with_prefix(title, template.prefix)
    if body.get("topics") is None and template.topics:
        out["topics"] = list(template.topics)
    if body.get("urgency") is None:
        out["urgency"] = template.urgency.value
    if body.get("ttl") is None:
        out["ttl"] = template.ttl_s
    return out


def topics_json(topics: tuple[str, ...]) -> str:
    return json.dumps(list(topics))
