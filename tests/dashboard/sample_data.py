"""Sample content for dashboard tests: simulated parts with plausible findings, synthetic images, a report.

Used by the dashboard tests and by ``docs/screenshots.py``, so both look at the
same kind of data a real line produces: frames in the image store, inspections
and findings written through the pipeline's own repository functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import cv2
import numpy as np
from sqlalchemy import select

from pipeline import review
from pipeline.db import repository as repo
from pipeline.db.models import InspectionRow, ReportRow, SuiteRow, utcnow
from pipeline.images import encode_png
from pipeline.inspection import Workspace
from pipeline.simulate import SimulatedPart, SimulationSettings, render_part
from pipeline.types import (
    Decision,
    Finding,
    FindingKind,
    Frame,
    InspectionResult,
    Region,
    SyntheticImage,
    sha256_hex,
)

SPECIALIST = "anomaly"
MODEL_VERSION = "sample-1"
REVIEW_AT, FAIL_AT = 0.5, 0.8


def _heatmap(part: SimulatedPart, rng: np.random.Generator) -> np.ndarray:
    """A heat map that glows where the defect is, plus a little noise, like the real model's."""
    mask = part.mask.astype(np.float32) / 255.0
    noise = rng.random(mask.shape, dtype=np.float32) * 0.15
    return cv2.GaussianBlur(mask + noise, (0, 0), sigmaX=4).astype(np.float32)


def _findings(part: SimulatedPart, score: float) -> list[Finding]:
    findings = [Finding(SPECIALIST, MODEL_VERSION, FindingKind.ANOMALY, score=score)]
    if part.defect is None:
        return findings
    x, y, w, h = cv2.boundingRect(part.mask)
    region = Region(x, y, w, h, int(np.count_nonzero(part.mask)), mm_per_px=0.2)
    findings.append(Finding(SPECIALIST, MODEL_VERSION, FindingKind.ANOMALY, score, part.defect, region))
    name = part.defect.replace("_", " ")
    sentence = (
        f"{'An' if name[0] in 'aeiou' else 'A'} {name} about {region.length_mm:.1f} mm long "
        f"near ({x + w // 2}, {y + h // 2}) px."
    )
    findings.append(Finding("describe", MODEL_VERSION, FindingKind.DESCRIPTION, text=sentence))
    return findings


def _decide(score: float) -> Decision:
    if score >= FAIL_AT:
        return Decision.FAIL
    return Decision.REVIEW if score >= REVIEW_AT else Decision.PASS


def fill_line(
    ws: Workspace, line_id: str, count: int, *, seed: int = 1, size: int = 160, newest: datetime | None = None
) -> list[int]:
    """Inspect ``count`` simulated parts into the workspace (one every 20 s up to ``newest``); their ids."""
    settings = SimulationSettings(size=size, seed=seed, defect_rate=0.4, jitter_px=min(6, size // 10))
    rng = np.random.default_rng(seed)
    newest = newest or utcnow()
    store, ids = ws.store, []
    with ws.session() as session, session.begin():
        repo.ensure_line(session, line_id, line_id)
        for index in range(count):
            part = render_part(settings, index)
            data = encode_png(part.image)
            store.put(data)
            at = newest - timedelta(seconds=20 * (count - 1 - index))
            frame = Frame(part.image, line_id, "cam1", at, sha256_hex(data), f"sim://sample#{index}", data)
            score = float(rng.uniform(0.55, 1.0) if part.defect else rng.uniform(0.05, 0.6))
            heat_sha = store.put_heatmap(_heatmap(part, rng), scale=1.0)
            findings = tuple(_findings(part, score))
            reason = f"score {score:.3f}"
            result = InspectionResult(frame.sha256, findings, _decide(score), reason, {}, "sample")
            frame_id = repo.record_frame(session, frame, str(store.path_for(frame.sha256)))
            repo.record_inspection(session, frame_id, result, heatmap_sha256=heat_sha)
            inspection_id = select(InspectionRow.id).where(InspectionRow.frame_id == frame_id)
            ids.append(session.scalars(inspection_id).one())
    return ids


def add_synthetic_images(ws: Workspace, count: int, *, seed: int = 5, size: int = 160) -> list[int]:
    """Pending generated images (simulated defects standing in for a generator's output)."""
    settings = SimulationSettings(size=size, seed=seed, defect_rate=1.0, jitter_px=min(6, size // 10))
    ids = []
    with ws.session() as session, session.begin():
        for index in range(count):
            part = render_part(settings, index)
            assert part.defect is not None
            image = SyntheticImage(
                pixels=part.image,
                mask=part.mask > 0,
                defect_class=part.defect,
                generator="sample-inpaint",
                model_version=MODEL_VERSION,
                seed=seed * 1000 + index,
                conditioning={"prescreen": {"priority": 0.1 * index, "anomaly_score": 0.7 + 0.02 * index}},
                source_image_sha256=sha256_hex(encode_png(part.image)),
            )
            ids.append(review.record_synthetic(session, ws.store, image))
    return ids


def add_models_and_report(ws: Workspace, model_name: str) -> int:
    """Two versions of a model (the newer active) and one accuracy report; returns the report id."""
    metrics = {"image_auroc": 0.981, "false_reject_rate": 0.01, "escape_rate": 0.04}
    with ws.session() as session, session.begin():
        # the older version's record predates calibration sources: it says only how many images
        calibrated = (
            {"n_calibration_images": 66},
            {
                "n_calibration_images": 103,
                "calibration_source": "/parts/other",
                "calibration_defects": {"n_images": 8},
            },
        )
        for (version, active), training in zip(
            (("2026-01-01-aaaa", False), ("2026-02-01-bbbb", True)), calibrated, strict=True
        ):
            record = repo.ModelRecord(
                name=model_name,
                version=version,
                kind="anomaly",
                path=str(ws.models_root / model_name / version),
                onnx_sha256=sha256_hex(version.encode()),
                metrics={**metrics, "training": training},
                thresholds={"review": REVIEW_AT, "fail": FAIL_AT},
                training_digest=version[-4:],
            )
            repo.register_model(session, record, activate=active)
        suite = SuiteRow(name="sample-suite")
        session.add(suite)
        session.flush()
        report = ReportRow(
            suite_id=suite.id,
            model_name=model_name,
            model_version="2026-02-01-bbbb",
            metrics=metrics,
            suite_digest="0" * 64,
            created_by="sample",
            path=str(ws.data_dir / "reports" / "sample.json"),
        )
        session.add(report)
        session.flush()
        return report.id
