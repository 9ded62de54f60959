"""The generate-defects flow: one real Prefect run (test harness) recording pending images."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.generate_defects import generate_defects_flow
from pipeline.inspection import Workspace
from pipeline.review import approved_synthetic_images, review_queue


@pytest.mark.slow
def test_flow_run_records_pending_images(gen_ws: Workspace, good_dir: Path) -> None:
    args = {"data_dir": str(gen_ws.data_dir), "config_dir": str(gen_ws.config_dir)}
    with prefect_test_harness(server_startup_timeout=120):
        ids = generate_defects_flow(
            "test", "pit", 2, seed=9, base_images=str(good_dir), database_url=gen_ws.database_url, **args
        )
    assert len(ids) == 2
    with gen_ws.session() as session:
        assert sorted(r.id for r in review_queue(session)) == sorted(ids)
        assert approved_synthetic_images(session) == []
