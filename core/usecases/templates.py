"""The Templates use cases: admins list, create, edit and delete alert formats; each is audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from core import templates as rules
from core.errors import NotFound
from core.ports import AuditLog
from core.templates import Template, TemplateStore


class Templates:
    """Saved alert formats. Who may change them is checked at the door (admins only)."""

    def __init__(
        self,
        store: TemplateStore,
        audit: AuditLog,
        topics: Collection[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.audit_log = audit
        self.topics = topics
        self.clock = clock

    def list(self) -> list[Template]:
        return self.store.list_templates()

    def get(self, template_id: int) -> Template:
        found = self.store.get_template(template_id)
        if found is None:
            raise NotFound("no such template", "id")
        return found

    def create(self, actor: str | None, body: Mapping[str, Any]) -> Template:
        fields = rules.parse_template(body, self.topics)
        made = self.store.create_template(fields, actor, self.clock())
        self.audit_log.audit(actor, "template.create", str(made.id), made.as_json())
        return made

    def update(self, actor: str | None, template_id: int, body: Mapping[str, Any]) -> Template:
        before = self.get(template_id)
        fields = rules.parse_template(body, self.topics)
        after = self.store.update_template(template_id, fields, actor, self.clock())
        if after is None:
            raise NotFound("no such template", "id")
        detail = {"before": before.as_json(), "after": after.as_json()}
        self.audit_log.audit(actor, "template.edit", str(template_id), detail)
        return after

    def delete(self, actor: str | None, template_id: int) -> Template:
        gone = self.get(template_id)
        if not self.store.delete_template(template_id):
            raise NotFound("no such template", "id")
        self.audit_log.audit(actor, "template.delete", str(template_id), gone.as_json())
        return gone
