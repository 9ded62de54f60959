"""End to end in a real headless Chromium: reviewer and operator sessions against a live server."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from dashboard.live_server import serve
from pipeline.audit import list_audit
from pipeline.db.models import InspectionReviewRow, SyntheticImageRow
from pipeline.overrides import decision_in_force, unreviewed_review_band
from pipeline.types import Decision
from tests.dashboard.browser import chromium
from tests.dashboard.conftest import PASSWORD, Seeded, dashboard_settings
from tests.dashboard.sample_data import fill_line

pytestmark = pytest.mark.browser


def _log_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")


def test_reviewer_reviews_and_overrides_then_operator_is_kept_out(fresh: Seeded) -> None:
    approve_id, reject_id = fresh.synthetic_ids[:2]
    with fresh.ws.session() as session:
        queued = unreviewed_review_band(session)
    assert queued, "the sample line must put some parts in the REVIEW band"
    override_target = fresh.inspection_ids[-1]
    errors: list[str] = []
    with serve(fresh.ws, dashboard_settings()) as base, chromium() as browser:
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        _log_in(page, base, "reviewer1")

        page.click("text=Synthetic images")
        approve_card = page.locator(f'[data-synthetic="{approve_id}"]')
        approve_card.locator('input[name="reason"]').fill("realistic crack, mask fits")
        with page.expect_navigation():
            approve_card.locator('button[value="approve"]').click()
        assert page.locator(f'[data-synthetic="{approve_id}"]').count() == 0

        # keyboard: type the reason, leave the field, press R on the current (first) card
        first = page.locator("[data-queue-item]").first
        first_id = int(first.get_attribute("data-synthetic") or 0)
        assert first_id == reject_id or first_id in fresh.synthetic_ids
        first.locator('input[name="reason"]').fill("mask misses the defect")
        page.keyboard.press("Escape")
        with page.expect_navigation():
            page.keyboard.press("r")
        assert page.locator(f'[data-synthetic="{first_id}"]').count() == 0

        page.goto(f"{base}/review")  # REVIEW-band queue by keyboard: quick reason 1, then P
        page.keyboard.press("1")
        with page.expect_navigation():
            page.keyboard.press("p")
        assert page.locator(f'form[action="/review/{queued[0]}"]').count() == 0

        page.goto(f"{base}/inspections/{override_target}")
        heatmap = page.locator("#heatmap")
        assert heatmap.is_visible()
        page.keyboard.press("h")
        assert not heatmap.is_visible()
        page.fill('form.override input[name="reason"]', "operator saw a chip on the rim")
        with page.expect_navigation():
            page.click('form.override button[value="FAIL"]')
        assert "operator saw a chip on the rim" in page.locator("ul.history").inner_text()

        page.goto(f"{base}/audit")
        audit_text = page.locator("table.audit").inner_text()
        assert "synthetic.approved" in audit_text and "inspection.override" in audit_text

        operator = browser.new_page()
        _log_in(operator, base, "operator1")
        assert operator.locator('a[href="/users"]').count() == 0
        for admin_path in ("/users", "/specialists", "/synthetic", "/audit"):
            response = operator.goto(f"{base}{admin_path}")
            assert response is not None and response.status == 403, admin_path
            assert "may not" in operator.locator(".error").inner_text()
    assert errors == []

    with fresh.ws.session() as session:
        rows = session.execute(select(SyntheticImageRow.id, SyntheticImageRow.status)).tuples()
        statuses = dict(rows.all())
        reviews = list(session.scalars(select(InspectionReviewRow).order_by(InspectionReviewRow.id)))
        audit = {(e.action, e.target, e.user_name) for e in list_audit(session)}
        in_force = decision_in_force(session, override_target)
    assert statuses[approve_id] == "approved" and statuses[first_id] == "rejected"
    assert ("synthetic.approved", f"synthetic_image:{approve_id}", "reviewer1") in audit
    assert ("synthetic.rejected", f"synthetic_image:{first_id}", "reviewer1") in audit
    assert ("inspection.override", f"inspection:{override_target}", "reviewer1") in audit
    assert in_force is Decision.FAIL
    assert reviews[-1].reason == "operator saw a chip on the rim"
    assert reviews[0].inspection_id == queued[0] and reviews[0].decision == "PASS"
    assert reviews[0].reason == "Cosmetic only, within spec"


def test_lines_overview_updates_live_without_reload(fresh: Seeded) -> None:
    with serve(fresh.ws, dashboard_settings()) as base, chromium() as browser:
        page = browser.new_page()
        _log_in(page, base, "operator1")
        total = len(fresh.inspection_ids)
        row = page.locator('tr[data-line="test"]')
        assert f"of {total}" in row.inner_text()
        page.evaluate("window.notReloaded = true")  # gone if the page were reloaded instead of polled
        fill_line(fresh.ws, "test", 2, seed=99)  # two more parts arrive while the page is open
        # htmx polls every 5 s; the locator waits (Playwright's own script, not the page's: CSP allows it)
        row.filter(has_text=f"of {total + 2}").wait_for(timeout=12_000)
        assert page.evaluate("window.notReloaded") is True
