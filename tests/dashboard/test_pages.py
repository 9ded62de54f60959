"""What the pages show and what their forms change (database and audit log checked afterwards)."""

from __future__ import annotations

import re
from datetime import timedelta

import yaml
from sqlalchemy import select, update

from pipeline.audit import list_audit
from pipeline.config import load_line
from pipeline.db import repository as repo
from pipeline.db.model_registry import get_active_model
from pipeline.db.models import FrameRow, InspectionRow, SyntheticImageRow, utcnow
from pipeline.images import decode_image
from pipeline.overrides import decision_in_force, reviews_of
from pipeline.retention import prune_images
from pipeline.types import Frame
from pipeline.users import Role, get_user
from tests.dashboard.conftest import LINE, MODEL, Seeded, log_in, make_client

ROW_ID = re.compile(r'href="/inspections/(\d+)">#')


def _decisions(seeded: Seeded) -> dict[int, str]:
    with seeded.ws.session() as session:
        return dict(session.execute(select(InspectionRow.id, InspectionRow.decision)).tuples().all())


def test_lines_overview_counts_match_the_database(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    decisions = list(_decisions(seeded).values())
    table = client.get("/lines/table").text
    # all sample parts were captured within the last 8 minutes: the hour and shift windows agree
    assert table.count(f"of {len(decisions)}") == 2
    fails, reviews = decisions.count("FAIL"), decisions.count("REVIEW")
    assert table.count(f'<span class="FAIL">{fails}</span> / <span class="REVIEW">{reviews}</span>') == 2
    assert "running" in table
    page = client.get("/").text
    assert 'hx-get="/lines/table"' in page and 'hx-trigger="every 5s"' in page


def test_feed_pages_by_keyset_without_overlap(seeded: Seeded) -> None:
    with make_client(seeded.ws, feed_page_size=10) as client:
        log_in(client, Role.OPERATOR)
        first = client.get("/lines/test")
        ids_first = [int(i) for i in ROW_ID.findall(first.text)]
        assert ids_first == sorted(seeded.inspection_ids, reverse=True)[:10]
        older = re.search(r'href="(/lines/test\?before=\d+)"', first.text)
        assert older
        second = client.get(older.group(1), headers={"HX-Request": "true"})
        ids_second = [int(i) for i in ROW_ID.findall(second.text)]
        assert ids_second == sorted(seeded.inspection_ids, reverse=True)[10:20]
        assert "<html" not in second.text  # htmx gets only the rows


def test_feed_filters_by_decision_and_score(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    decisions = _decisions(seeded)
    fails = client.get("/lines/test?decision=FAIL").text
    assert {int(i) for i in ROW_ID.findall(fails)} == {i for i, d in decisions.items() if d == "FAIL"}
    assert "No inspections match" in client.get("/lines/test?min_score=2").text
    assert client.get("/lines/nope").status_code == 404


def test_inspection_detail_shows_heatmap_regions_and_description(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    with seeded.ws.session() as session:
        defective = session.scalars(
            select(InspectionRow).where(InspectionRow.decision != "PASS").order_by(InspectionRow.id)
        ).first()
        assert defective is not None
        heatmap = defective.heatmap_sha256
        labels = [f.label for f in defective.findings if f.label]
    page = client.get(f"/inspections/{defective.id}").text
    assert f'src="/images/{heatmap}"' in page and 'id="heatmap-toggle"' in page
    assert 'class="region"' in page and labels and labels[0] in page
    assert 'class="description"' in page and " mm long" in page
    assert client.get("/inspections/999999").status_code == 404


def test_pages_say_when_retention_removed_a_picture(fresh: Seeded) -> None:
    with fresh.ws.session() as session, session.begin():
        session.execute(update(FrameRow).values(created_at=utcnow() - timedelta(days=40)))
        passed = session.scalars(
            select(InspectionRow).where(InspectionRow.decision == "PASS").order_by(InspectionRow.id)
        ).first()
        assert passed is not None
        frame_sha, heatmap, camera = passed.frame.sha256, passed.heatmap_sha256, passed.frame.camera_id
        score = passed.anomaly_score
    data = fresh.ws.store.get(frame_sha)
    assert prune_images(fresh.ws, 30, by="test").frames > 0
    with make_client(fresh.ws) as client:
        log_in(client, Role.OPERATOR)
        page = client.get(f"/inspections/{passed.id}").text
        assert "image retention removed them" in page and f"{score:.4f}" in page
        assert f"/images/{frame_sha}" not in page and f"/images/{heatmap}" not in page
        assert 'id="heatmap-toggle"' not in page
        feed = client.get(f"/lines/{LINE}").text
        assert "not kept" in feed and f"/images/{frame_sha}" not in feed

        # the same bytes arrive again: the picture is back, the earlier heat map is not
        fresh.ws.store.put(data)
        frame = Frame(decode_image(data, "again"), LINE, camera, utcnow(), frame_sha, "sim://again", data)
        with fresh.ws.session() as session, session.begin():
            repo.record_frames(session, [(frame, str(fresh.ws.store.path_for(frame_sha)))])
        page = client.get(f"/inspections/{passed.id}").text
        assert f'src="/images/{frame_sha}"' in page and "Heat map not kept" in page
        assert f"/images/{heatmap}" not in page and 'id="heatmap-toggle"' not in page


def test_override_keeps_the_original_and_writes_the_audit_log(fresh: Seeded) -> None:
    target = fresh.inspection_ids[0]
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.OPERATOR)
        original = _decisions(fresh)[target]
        new = "FAIL" if original != "FAIL" else "PASS"
        data = {"decision": new, "reason": "burr seen", "csrf_token": token}
        response = client.post(f"/inspections/{target}/override", data=data)
        assert response.status_code == 303
        no_reason = client.post(
            f"/inspections/{target}/override", data={"decision": new, "reason": "  ", "csrf_token": token}
        )
        assert no_reason.status_code == 400
        page = client.get(f"/inspections/{target}").text
        assert f"(auto {original})" in page and "burr seen" in page
    assert _decisions(fresh)[target] == original
    with fresh.ws.session() as session:
        assert decision_in_force(session, target).value == new
        [review] = reviews_of(session, target)
        entry = list_audit(session, target=f"inspection:{target}")[0]
    assert (review.user_name, review.reason) == ("operator1", "burr seen")
    assert entry.user_name == "operator1" and entry.action == "inspection.override"
    assert entry.before == {"decision": original, "automatic": original}
    assert entry.after == {"decision": new, "reason": "burr seen"}


def test_review_queue_lists_review_band_and_empties_as_decided(fresh: Seeded) -> None:
    review_band = sorted(i for i, d in _decisions(fresh).items() if d == "REVIEW")
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.REVIEWER)
        page = client.get("/review").text
        assert [int(i) for i in re.findall(r'action="/review/(\d+)"', page)] == review_band
        assert 'data-key="p"' in page and 'data-key="f"' in page
        if review_band:
            first = review_band[0]
            data = {"decision": "PASS", "reason": "cosmetic", "csrf_token": token}
            assert client.post(f"/review/{first}", data=data).status_code == 303
            assert f'action="/review/{first}"' not in client.get("/review").text


def test_synthetic_queue_approve_and_reject_via_the_review_gate(fresh: Seeded) -> None:
    approve_id, reject_id = fresh.synthetic_ids[:2]
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.REVIEWER)
        page = client.get("/synthetic").text
        assert 'class="overlay mask"' in page and "anomaly_score" in page
        for image_id, verdict in ((approve_id, "approve"), (reject_id, "reject")):
            data = {"verdict": verdict, "reason": f"{verdict} looks right", "csrf_token": token}
            assert client.post(f"/synthetic/{image_id}", data=data).status_code == 303
        again = {"verdict": "approve", "reason": "twice", "csrf_token": token}
        assert client.post(f"/synthetic/{reject_id}", data=again).status_code == 409
        assert client.post("/synthetic/99999", data=again).status_code == 404
    with fresh.ws.session() as session:
        rows = {r.id: r for r in session.scalars(select(SyntheticImageRow))}
        actions = {e.target: e.action for e in list_audit(session)}
    assert (rows[approve_id].status, rows[approve_id].reviewed_by) == ("approved", "reviewer1")
    assert rows[reject_id].status == "rejected"
    assert actions[f"synthetic_image:{approve_id}"] == "synthetic.approved"
    assert actions[f"synthetic_image:{reject_id}"] == "synthetic.rejected"


def test_admin_activates_a_model_version(fresh: Seeded) -> None:
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.ADMIN)
        page = client.get("/models").text
        assert "2026-01-01-aaaa" in page and "image_auroc" in page
        calibrated = re.findall(r'<td class="calibration">([^<]*)</td>', page)
        assert sorted(calibrated) == ["103 good images (/parts/other), 8 defective", "66 good images"]
        data = {"name": MODEL, "version": "2026-01-01-aaaa", "csrf_token": token}
        assert client.post("/models/activate", data=data).status_code == 303
        assert client.post("/models/activate", data={**data, "version": "nope"}).status_code == 404
    with fresh.ws.session() as session:
        assert get_active_model(session, MODEL).version == "2026-01-01-aaaa"
        entry = list_audit(session, target=f"model:{MODEL}")[0]
    assert entry.before == {"version": "2026-02-01-bbbb"} and entry.after == {"version": "2026-01-01-aaaa"}


def test_reports_list_and_view(client_for, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    assert f'href="/reports/{seeded.report_id}"' in client.get("/reports").text
    view = client.get(f"/reports/{seeded.report_id}").text
    assert "sample-suite" in view and "image_auroc" in view and "0.981" in view
    assert client.get("/reports/424242").status_code == 404


def test_admin_adds_users_and_changes_roles(fresh: Seeded) -> None:
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.ADMIN)
        data = {"name": "dana", "role": "operator", "password": "a long password", "csrf_token": token}
        assert client.post("/users", data=data).status_code == 303
        assert client.post("/users", data=data).status_code == 409
        short = {**data, "name": "eve", "password": "short"}
        assert client.post("/users", data=short).status_code == 400
        role = {"role": "reviewer", "csrf_token": token}
        assert client.post("/users/dana/role", data=role).status_code == 303
        assert "dana" in client.get("/users").text
    with fresh.ws.session() as session:
        user = get_user(session, "dana")
        actions = [(e.action, e.user_name) for e in list_audit(session, target="user:dana")]
    assert user is not None and user.role is Role.REVIEWER
    assert actions == [("user.role", "admin1"), ("user.add", "admin1")]


def test_admin_toggles_a_specialist_in_the_line_file(fresh: Seeded) -> None:
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.ADMIN)
        data = {"specialist": "anomaly", "enabled": "false", "csrf_token": token}
        assert client.post("/lines/test/specialists", data=data).status_code == 303
        assert "Turn on" in client.get("/specialists").text
    assert load_line(fresh.ws.config_dir, "test").specialists.anomaly.enabled is False
    raw = yaml.safe_load((fresh.ws.config_dir / "lines" / "test.yaml").read_text())
    assert raw["cameras"][0]["camera_id"] == "cam1"  # the rest of the file survives
    with fresh.ws.session() as session:
        entry = list_audit(session, target="line:test/anomaly")[0]
    assert (entry.before, entry.after) == ({"enabled": True}, {"enabled": False})


def test_audit_page_lists_entries(client_for) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.REVIEWER)
    page = client.get("/audit").text
    assert "user.add" in page and "admin1" in page


def test_pages_carry_a_strict_content_security_policy(client_for) -> None:  # type: ignore[no-untyped-def]
    client, _ = client_for(Role.OPERATOR)
    response = client.get("/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text and "https://" not in response.text
    assert client.get("/static/htmx.min.js").status_code == 200


def test_a_caption_is_shown_as_the_caption_models_words() -> None:
    from datetime import UTC, datetime

    from dashboard.queries import FeedItem, FindingView
    from pipeline.types import Decision

    grounded = FindingView("description", "describe", None, None, "No anomalous region.", None)
    caption = FindingView("description", "caption", None, "caption", "a grey disc with a label", None)
    item = FeedItem(
        1, "l", "cam1", datetime.now(UTC), "0" * 64, 8, 8, Decision.PASS, Decision.PASS, "ok", 1.0,
        None, None, [grounded, caption],
    )  # fmt: skip
    assert item.descriptions == [
        "No anomalous region.",
        "Caption (a captioning model's words, not checked against the findings): a grey disc with a label",
    ]


def test_switching_on_a_specialist_the_file_has_not_set_up_says_what_is_missing(fresh: Seeded) -> None:
    path = fresh.ws.config_dir / "lines" / "test.yaml"
    before = path.read_text()
    with make_client(fresh.ws) as client:
        token = log_in(client, Role.ADMIN)
        data = {"specialist": "caption", "enabled": "true", "csrf_token": token}
        response = client.post("/lines/test/specialists", data=data)
    assert response.status_code == 400
    assert str(path) in response.text and "specialists.caption.model" in response.text
    assert path.read_text() == before  # the file is left as it was
    with fresh.ws.session() as session:
        assert list_audit(session, target="line:test/caption") == []  # nothing logged for a refused change
