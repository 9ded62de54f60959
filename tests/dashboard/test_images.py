"""Images come from the content-addressed store by digest only; nothing else on disk is reachable."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.db.models import FrameRow
from pipeline.users import Role
from tests.dashboard.conftest import Seeded, make_client


def test_frame_is_served_by_digest_with_its_bytes_and_type(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    with seeded.ws.session() as session:
        sha = session.scalars(select(FrameRow.sha256)).first()
    assert sha is not None
    response = client.get(f"/images/{sha}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == seeded.ws.store.get(sha)


def test_unknown_digest_is_not_found(client_for) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    assert client.get("/images/" + "0" * 64).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/images/..%2F..%2Fqcflow.db",
        "/images/%2e%2e%2f%2e%2e%2fdashboard_secret",
        "/images/../../qcflow.db",
        "/images/..%5c..%5cqcflow.db",
        "/images/" + "A" * 64,  # upper case is not how digests are stored
        "/images/" + "a" * 63,
        "/images/" + "a" * 64 + "%2F..%2F..%2Fqcflow.db",
        "/images/%2Fetc%2Fpasswd",
    ],
)
def test_path_traversal_attempts_are_refused(client_for, path: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.ADMIN)
    response = client.get(path)
    assert response.status_code in (404, 422)
    assert b"SQLite format" not in response.content and b"root:" not in response.content


def test_images_need_a_login(seeded: Seeded) -> None:
    with make_client(seeded.ws) as client:
        assert client.get("/images/" + "0" * 64).status_code == 303
