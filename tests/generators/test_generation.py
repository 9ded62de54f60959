"""Generation end to end: off by default, pending records, reproducible, bad input leaves nothing behind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from flows.generate_defects import generate_defects_flow
from pipeline.db import repository as repo
from pipeline.db.models import SyntheticImageRow
from pipeline.decide import Thresholds
from pipeline.errors import DatasetError, ReviewRequired, StorageError
from pipeline.generation import (
    GenerationDisabled,
    GenerationRequest,
    generate_defects,
    load_generator,
)
from pipeline.images import encode_png
from pipeline.inspection import Workspace, open_workspace
from pipeline.review import approve, export_training_set, get_synthetic
from pipeline.simulate import render_part
from pipeline.types import Decision, Frame, InspectionResult, ReviewStatus, sha256_hex
from tests.generators.conftest import SIM, write_config


def _count(ws: Workspace) -> int:
    with ws.session() as session:
        return session.scalar(select(func.count()).select_from(SyntheticImageRow)) or 0


def _request(good_dir: Path, **changes: object) -> GenerationRequest:
    request = GenerationRequest(
        "test", "scratch", 3, seed=5, base_images=str(good_dir), num_inference_steps=2
    )
    return replace(request, **changes)  # type: ignore[arg-type]


def test_generation_is_off_unless_enabled(tmp_path: Path, good_dir: Path) -> None:
    ws = open_workspace(tmp_path / "data", write_config(tmp_path / "config", enabled=False))
    args: dict[str, Any] = {
        "data_dir": str(ws.data_dir),
        "config_dir": str(ws.config_dir),
        "database_url": ws.database_url,
    }
    with pytest.raises(GenerationDisabled, match="generators: {enabled: true}"):
        generate_defects_flow.fn("test", "scratch", 1, base_images=str(good_dir), **args)
    with pytest.raises(GenerationDisabled):
        generate_defects(ws, _request(good_dir), generator=None)  # type: ignore[arg-type]
    assert _count(ws) == 0


def test_generated_images_are_pending_with_full_provenance(gen_ws: Workspace, good_dir: Path) -> None:
    generator = load_generator(gen_ws)
    ids = generate_defects(gen_ws, _request(good_dir), generator)
    assert len(ids) == 3
    with gen_ws.session() as session:
        records = [get_synthetic(session, i) for i in ids]
    sources = {sha256_hex(p.read_bytes()) for p in good_dir.iterdir()}
    for seed, record in zip((5, 6, 7), records, strict=True):
        assert record.status is ReviewStatus.PENDING and record.reviewed_by is None
        assert (record.defect_class, record.generator, record.model_version) == (
            "scratch",
            "tiny",
            generator.version,
        )
        assert record.seed == seed and record.source_image_sha256 in sources
        assert record.conditioning["num_inference_steps"] == 2
        assert record.conditioning["guidance"] == 2.0
        screen = record.conditioning["prescreen"]
        assert 0.0 <= screen["priority"] <= 1.0 and screen["anomaly_score"] is None
        assert gen_ws.store.path_for(record.mask_sha256).is_file()


def test_same_seed_and_inputs_give_the_same_image(gen_ws: Workspace, good_dir: Path) -> None:
    generator = load_generator(gen_ws, "tiny")
    first = generate_defects(gen_ws, _request(good_dir, count=2), generator)
    again = generate_defects(gen_ws, _request(good_dir, count=1, seed=6), generator)
    with gen_ws.session() as session:
        assert get_synthetic(session, again[0]).sha256 == get_synthetic(session, first[1]).sha256
    assert again == first[1:] and _count(gen_ws) == 2


def test_base_images_default_to_frames_that_passed_inspection(gen_ws: Workspace) -> None:
    generator = load_generator(gen_ws)
    with pytest.raises(DatasetError, match="no frames of line 'test' passed inspection"):
        generate_defects(gen_ws, _request(Path(), base_images="good"), generator)
    pixels = render_part(SIM, 700, None).image
    encoded = encode_png(pixels)
    sha = gen_ws.store.put(encoded)
    frame = Frame(pixels, "test", "cam1", datetime.now(UTC), sha, "sim://700", encoded)
    result = InspectionResult(sha, (), Decision.PASS, "clean", {}, "cfg")
    with gen_ws.session() as session, session.begin():
        repo.record_inspection(
            session, repo.record_frame(session, frame, str(gen_ws.store.path_for(sha))), result
        )
    (image_id,) = generate_defects(gen_ws, _request(Path(), base_images="good", count=1), generator)
    with gen_ws.session() as session:
        assert get_synthetic(session, image_id).source_image_sha256 == sha


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"defect_class": "crack"}, DatasetError, r"no class 'crack'"),
        ({"count": 10_000, "max_disk_bytes": 10_000_000}, StorageError, r"--count 10000 needs up to .* MB"),
        ({"base_images": "/nonexistent"}, DatasetError, "expected 'good' or a folder"),
    ],
)
def test_bad_requests_are_refused_before_anything_is_recorded(
    gen_ws: Workspace, good_dir: Path, changes: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        generate_defects(gen_ws, _request(good_dir, **changes), load_generator(gen_ws))
    assert _count(gen_ws) == 0


def test_a_failure_mid_batch_leaves_nothing_pending(gen_ws: Workspace, good_dir: Path) -> None:
    generator = load_generator(gen_ws)
    calls = []

    def failing(**kwargs: Any) -> object:
        calls.append(kwargs["seed"])
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return generator(**kwargs)

    class Failing:
        name, version = generator.name, generator.version
        draw_mask, class_stats = generator.draw_mask, generator.class_stats
        __call__ = staticmethod(failing)

    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_defects(gen_ws, _request(good_dir), Failing())  # type: ignore[arg-type]
    assert calls == [5, 6, 7] and _count(gen_ws) == 0


def test_training_set_export_takes_approved_images_only(
    gen_ws: Workspace, good_dir: Path, tmp_path: Path
) -> None:
    ids = generate_defects(gen_ws, _request(good_dir), load_generator(gen_ws))
    with gen_ws.session() as session:
        with pytest.raises(ReviewRequired, match=rf"\[{ids[0]}, {ids[1]}\] are not approved"):
            export_training_set(session, gen_ws.store, tmp_path / "set", ids=ids[:2])
        assert not (tmp_path / "set").exists()
        assert export_training_set(session, gen_ws.store, tmp_path / "set") == []
    _approve(gen_ws, ids[1])
    with gen_ws.session() as session:
        written = export_training_set(session, gen_ws.store, tmp_path / "set")
    assert [p.name for p in written] == [f"syn-{ids[1]}.png"]
    mask = tmp_path / "set" / "ground_truth" / "scratch" / f"syn-{ids[1]}_mask.png"
    assert mask.is_file() and np.frombuffer(mask.read_bytes(), np.uint8).size > 0


def _approve(ws: Workspace, image_id: int) -> None:
    from pipeline.db.models import UserRow

    with ws.session() as session, session.begin():
        if session.scalar(select(UserRow).where(UserRow.name == "rita")) is None:
            session.add(UserRow(name="rita", role="reviewer", password_hash="x"))
            session.flush()
        approve(session, image_id, "rita", "looks like a real scratch")


def test_the_anomaly_specialist_takes_part_in_the_prescreen(gen_ws: Workspace, good_dir: Path) -> None:
    class CornerScorer:
        """Sees a strong anomaly in the top-left corner, where no drawn scratch lies."""

        thresholds = Thresholds(review=0.5, fail=0.8)

        def score_images(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            heat = np.zeros((len(images), 28, 28), np.float32)
            heat[:, 0, 0] = 1.0
            return heat, np.full(len(images), 0.9, np.float32)

    (image_id,) = generate_defects(
        gen_ws,
        _request(good_dir, count=1),
        load_generator(gen_ws),
        CornerScorer(),  # type: ignore[arg-type]
    )
    with gen_ws.session() as session:
        screen = get_synthetic(session, image_id).conditioning["prescreen"]
    assert screen["anomaly_score"] == pytest.approx(0.9) and screen["anomaly_peak_in_mask"] is False
    assert "anomaly specialist finds the defect outside the mask" in screen["flags"]
