"""Every state-changing request needs the session's CSRF token."""

from __future__ import annotations

from sqlalchemy import func, select

from pipeline.db.models import AuditLogRow, InspectionReviewRow
from pipeline.users import Role
from tests.dashboard.conftest import Seeded, csrf_of, make_client


def _counts(seeded: Seeded) -> tuple[int, int]:
    with seeded.ws.session() as session:
        reviews = session.scalar(select(func.count()).select_from(InspectionReviewRow))
        audits = session.scalar(select(func.count()).select_from(AuditLogRow))
    return reviews or 0, audits or 0


def test_post_without_or_with_wrong_token_is_refused_and_changes_nothing(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, token = client_for(Role.OPERATOR)
    target = f"/inspections/{seeded.inspection_ids[0]}/override"
    form = {"decision": "FAIL", "reason": "csrf probe"}
    before = _counts(seeded)
    missing = client.post(target, data=form)
    wrong = client.post(target, data={**form, "csrf_token": token + "x"})
    assert missing.status_code == wrong.status_code == 403
    assert "CSRF" in missing.text
    assert _counts(seeded) == before


def test_token_of_another_session_is_refused(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    _, other_token = client_for(Role.ADMIN)
    response = client.post(
        f"/inspections/{seeded.inspection_ids[0]}/override",
        data={"decision": "FAIL", "reason": "x", "csrf_token": other_token},
    )
    assert response.status_code == 403


def test_token_in_htmx_header_is_accepted(fresh: Seeded) -> None:
    with make_client(fresh.ws) as client:
        from tests.dashboard.conftest import log_in

        token = log_in(client, Role.OPERATOR)
        response = client.post(
            f"/inspections/{fresh.inspection_ids[0]}/override",
            data={"decision": "FAIL", "reason": "seen by eye"},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 303


def test_login_form_needs_the_token_too(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        csrf_of(client)  # a session exists, but the form omits its token
        response = client.post("/login", data={"username": "admin1", "password": "whatever"})
        assert response.status_code == 403
