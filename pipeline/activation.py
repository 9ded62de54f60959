"""Making a model version the live one: a person's (admin) decision, always audited."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.audit import write_audit
from pipeline.db.model_registry import ModelRecord, activate_model, list_models
from pipeline.users import Role, UserRecord, require_role


def activate_as(session: Session, actor: UserRecord | str, name: str, version: str) -> ModelRecord:
    """Activate ``name`` ``version`` on behalf of ``actor``: an admin user, or a named automatic
    policy (e.g. a flow whose line config says ``auto_activate``). Writes the audit log."""
    if isinstance(actor, UserRecord):
        require_role(actor, Role.ADMIN, f"activate model {name}")
    before = next((m.version for m in list_models(session) if m.name == name and m.active), None)
    record = activate_model(session, name, version)
    write_audit(session, actor, "model.activate", f"model:{name}", {"version": before}, {"version": version})
    return record
