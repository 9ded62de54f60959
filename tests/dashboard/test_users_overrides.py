"""pipeline.users, pipeline.overrides and pipeline.audit without the web layer, and the CLI commands."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.audit import list_audit, write_audit
from pipeline.cli import app
from pipeline.db.models import UserRow
from pipeline.overrides import UnknownInspection, decision_in_force, override_decision, unreviewed_review_band
from pipeline.types import Decision
from pipeline.users import (
    PermissionDenied,
    Role,
    UserExists,
    add_user,
    authenticate,
    get_user,
    set_role,
)
from tests.dashboard.conftest import PASSWORD, Seeded


def test_passwords_are_stored_as_argon2_hashes(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        stored = session.scalar(select(UserRow.password_hash).where(UserRow.name == "admin1"))
        assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
        assert authenticate(session, "admin1", PASSWORD) is not None
        assert authenticate(session, "admin1", PASSWORD + "!") is None
        assert authenticate(session, "ghost", PASSWORD) is None


def test_add_user_refuses_duplicates_bad_names_and_short_passwords(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        with pytest.raises(UserExists):
            add_user(session, "admin1", Role.ADMIN, PASSWORD)
        with pytest.raises(ValueError, match="user name"):
            add_user(session, "../x", Role.ADMIN, PASSWORD)
        with pytest.raises(ValueError, match="at least 8"):
            add_user(session, "short", Role.ADMIN, "pw")
        with pytest.raises(ValueError):
            add_user(session, "kim", "superuser", PASSWORD)


def test_only_admins_change_roles(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        reviewer = get_user(session, "reviewer1")
        admin = get_user(session, "admin1")
        assert reviewer is not None and admin is not None
        with pytest.raises(PermissionDenied, match="reviewer1"):
            set_role(session, reviewer, "operator1", Role.ADMIN)
        assert set_role(session, admin, "operator1", Role.REVIEWER).role is Role.REVIEWER


def test_override_rules(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        operator = get_user(session, "operator1")
        assert operator is not None
        target = fresh.inspection_ids[1]
        with pytest.raises(ValueError, match="PASS or FAIL"):
            override_decision(session, operator, target, Decision.REVIEW, "unsure")
        with pytest.raises(ValueError, match="needs a reason"):
            override_decision(session, operator, target, Decision.FAIL, "   ")
        with pytest.raises(UnknownInspection):
            override_decision(session, operator, 10**9, Decision.FAIL, "x")
        override_decision(session, operator, target, Decision.FAIL, "first")
        override_decision(session, operator, target, Decision.PASS, "second look")
        assert decision_in_force(session, target) is Decision.PASS
        entries = list_audit(session, target=f"inspection:{target}")
        assert [e.after["decision"] for e in entries if e.after] == ["PASS", "FAIL"]
        assert entries[0].before is not None and entries[0].before["decision"] == "FAIL"


def test_review_band_queue_skips_decided_inspections(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        queue = unreviewed_review_band(session)
        if not queue:
            pytest.skip("the sample produced no REVIEW-band inspection")
        reviewer = get_user(session, "reviewer1")
        assert reviewer is not None
        override_decision(session, reviewer, queue[0], Decision.PASS, "fine")
        assert unreviewed_review_band(session) == queue[1:]


def test_write_audit_needs_user_action_and_target(fresh: Seeded) -> None:
    with fresh.ws.session() as session:
        with pytest.raises(ValueError, match="user"):
            write_audit(session, "", "x.y", "t:1", None, None)
        with pytest.raises(ValueError, match="action"):
            write_audit(session, "ann", "", "t:1", None, None)
        entry = write_audit(session, "ann", "threshold.change", "line:a", {"fail": 0.8}, {"fail": 0.9})
        assert list_audit(session, target="line:a")[0] == entry


def test_cli_users_add_and_list(fresh: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCFLOW_DATABASE_URL", fresh.ws.database_url)
    monkeypatch.setenv("QCFLOW_NEW_USER_PASSWORD", "cli password 1")
    data_dir = str(fresh.ws.data_dir)
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "lee", "--role", "reviewer", "--data-dir", data_dir])
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["users", "add", "lee", "--role", "reviewer", "--data-dir", data_dir])
    assert again.exit_code == 2 and "already exists" in again.output
    listed = runner.invoke(app, ["users", "list", "--data-dir", data_dir])
    assert "lee" in listed.output and "reviewer" in listed.output
    with fresh.ws.session() as session:
        assert authenticate(session, "lee", "cli password 1") is not None


def test_cli_dashboard_serves_the_app_on_the_given_address(
    fresh: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: served.update(app=app, host=host, port=port))
    monkeypatch.setenv("QCFLOW_DATABASE_URL", fresh.ws.database_url)
    monkeypatch.setenv("QCFLOW_DASHBOARD_SECRET", "cli-test-secret")
    args = ["dashboard", "--port", "8123", "--data-dir", str(fresh.ws.data_dir)]
    result = CliRunner().invoke(app, [*args, "--config-dir", str(fresh.ws.config_dir)])
    assert result.exit_code == 0, result.output
    assert served["host"] == "127.0.0.1" and served["port"] == 8123
    assert type(served["app"]).__name__ == "FastAPI"


def test_session_secret_is_generated_once_and_kept_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dashboard.settings import DashboardEnvironment, session_secret

    first = session_secret(DashboardEnvironment(secret=None), tmp_path)
    assert len(first) >= 40 and session_secret(DashboardEnvironment(secret=None), tmp_path) == first
    assert (tmp_path / "dashboard_secret").stat().st_mode & 0o077 == 0
    assert session_secret(DashboardEnvironment(secret="from-env"), tmp_path) == "from-env"
