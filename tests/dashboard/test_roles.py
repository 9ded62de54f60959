"""Role checks on every route, on the server: each role reaches what it may and gets 403 elsewhere."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dashboard.app import ROUTERS
from pipeline.db.models import FrameRow
from pipeline.users import Role
from tests.dashboard.conftest import Seeded

OPERATOR, REVIEWER, ADMIN = Role.OPERATOR, Role.REVIEWER, Role.ADMIN

# (method, declared path, the least role that may use it)
ROUTES: list[tuple[str, str, Role]] = [
    ("GET", "/", OPERATOR),
    ("GET", "/lines/table", OPERATOR),
    ("GET", "/lines/{line_id}", OPERATOR),
    ("GET", "/inspections/{inspection_id}", OPERATOR),
    ("POST", "/inspections/{inspection_id}/override", OPERATOR),
    ("GET", "/models", OPERATOR),
    ("GET", "/reports", OPERATOR),
    ("GET", "/reports/{report_id}", OPERATOR),
    ("GET", "/images/{sha256}", OPERATOR),
    ("GET", "/review", REVIEWER),
    ("POST", "/review/{inspection_id}", REVIEWER),
    ("GET", "/synthetic", REVIEWER),
    ("POST", "/synthetic/{image_id}", REVIEWER),
    ("GET", "/audit", REVIEWER),
    ("GET", "/users", ADMIN),
    ("POST", "/users", ADMIN),
    ("POST", "/users/{name}/role", ADMIN),
    ("GET", "/specialists", ADMIN),
    ("POST", "/lines/{line_id}/specialists", ADMIN),
    ("POST", "/models/activate", ADMIN),
]
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout")}


def test_every_route_is_in_the_role_table() -> None:
    """A new route without an entry here fails, so nobody forgets to decide (and test) its role."""
    declared = {(m, r.path) for module in ROUTERS for r in module.router.routes for m in r.methods}
    assert declared - PUBLIC == {(m, p) for m, p, _ in ROUTES}


def _path(template: str, seeded: Seeded) -> str:
    with seeded.ws.session() as session:
        image = session.scalars(select(FrameRow.sha256)).first()
    return template.format(
        line_id="test",
        inspection_id=seeded.inspection_ids[0],
        report_id=seeded.report_id,
        sha256=image,
        image_id=seeded.synthetic_ids[0],
        name="nobody-such",
    )


# Forms that a permitted user submits with invalid data: passing the role check then
# yields 4xx from validation (never 403), and nothing changes in the shared database.
HARMLESS_FORMS = {
    "/inspections/{inspection_id}/override": {"decision": "MAYBE", "reason": "x"},
    "/review/{inspection_id}": {"decision": "MAYBE", "reason": "x"},
    "/synthetic/{image_id}": {"verdict": "approve", "reason": " "},
    "/users": {"name": "bad name!", "role": "operator", "password": "long enough pw"},
    "/users/{name}/role": {"role": "admin"},
    "/lines/{line_id}/specialists": {"specialist": "no-such", "enabled": "true"},
    "/models/activate": {"name": "test-anomaly", "version": "no-such"},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("method", "template", "least"), ROUTES)
def test_role_matrix(client_for, seeded: Seeded, role: Role, method: str, template: str, least: Role) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    client, token = client_for(role)
    path = _path(template, seeded)
    if method == "GET":
        response = client.get(path)
    else:
        response = client.post(path, data={**HARMLESS_FORMS[template], "csrf_token": token})
    if role.allows(least):
        assert response.status_code != 403, (role, path, response.text[:300])
        assert response.status_code < 500
        if method == "GET":
            assert response.status_code == 200
    else:
        assert response.status_code == 403, (role, path)


@pytest.mark.parametrize(("method", "template", "least"), ROUTES)
def test_anonymous_is_sent_to_login(
    client_for, seeded: Seeded, method: str, template: str, least: Role
) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    client, token = client_for(None)
    path = _path(template, seeded)
    response = client.get(path) if method == "GET" else client.post(path, data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_operator_sees_no_admin_links(client_for) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    page = client.get("/").text
    assert 'href="/users"' not in page and 'href="/review"' not in page
    admin, _ = client_for(Role.ADMIN)
    assert 'href="/users"' in admin.get("/").text
