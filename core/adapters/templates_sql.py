"""Alert templates in SQL (table alert_templates)."""

from __future__ import annotations

import json

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from core.adapters import tables as t
from core.errors import Conflict
from core.model import Urgency
from core.templates import Template, TemplateFields

_TAKEN = "a template with that name exists already"


def _template(r: RowMapping) -> Template:
    return Template(
        id=int(r["id"]),
        name=r["name"],
        prefix=r["prefix"],
        topics=tuple(json.loads(r["topics"])),
        urgency=Urgency(r["urgency"]),
        ttl_s=int(r["ttl_s"]),
        updated_at=float(r["updated_at"]),
        updated_by=r["updated_by"],
    )


def _values(fields: TemplateFields, actor: str | None, now: float) -> dict[str, object]:
    return {
        "name": fields.name,
        "prefix": fields.prefix,
        "topics": json.dumps(list(fields.topics)),
        "urgency": fields.urgency.value,
        "ttl_s": fields.ttl_s,
        "updated_at": now,
        "updated_by": actor,
    }


class SqlTemplates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_templates(self) -> list[Template]:
        a = t.alert_templates
        with self.engine.connect() as conn:
            return [_template(r) for r in conn.execute(select(a).order_by(a.c.id)).mappings()]

    def get_template(self, template_id: int) -> Template | None:
        a = t.alert_templates
        if not 0 < template_id < 2**62:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(a).where(a.c.id == template_id)).mappings().first()
        return None if row is None else _template(row)

    def template_named(self, name: str) -> Template | None:
        a = t.alert_templates
        with self.engine.connect() as conn:
            row = conn.execute(select(a).where(a.c.name == name)).mappings().first()
        return None if row is None else _template(row)

    def create_template(self, fields: TemplateFields, actor: str | None, now: float) -> Template:
        a = t.alert_templates
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(
                    insert(a)
                    .values(created_at=now, **_values(fields, actor, now))
                    .returning(a.c.id)
                ).scalar_one()
        except IntegrityError:
            raise Conflict(_TAKEN, "name") from None
        found = self.get_template(int(new_id))
        assert found is not None
        return found

    def update_template(
        self, template_id: int, fields: TemplateFields, actor: str | None, now: float
    ) -> Template | None:
        a = t.alert_templates
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(
                    update(a).where(a.c.id == template_id).values(**_values(fields, actor, now))
                ).rowcount
        except IntegrityError:
            raise Conflict(_TAKEN, "name") from None
        return self.get_template(template_id) if changed else None

    def delete_template(self, template_id: int) -> bool:
        a = t.alert_templates
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(a).where(a.c.id == template_id)).rowcount)
