"""The orchestrator: only enabled specialists, failures recorded, decisions combined."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import orchestrator
from pipeline.config import LineConfig
from pipeline.decide import Thresholds, decide_findings
from pipeline.images import encode_png
from pipeline.orchestrator import build_orchestrator
from pipeline.simulate import SimulationSettings, render_part
from pipeline.types import Decision, Finding, FindingKind, Frame, sha256_hex


def _line(**specialist_settings: object) -> LineConfig:
    return LineConfig.model_validate(
        {
            "line_id": "t",
            "name": "t",
            "schedule": {"interval_seconds": 5},
            "cameras": [{"camera_id": "cam1", "source": "sim://t"}],
            "specialists": {"anomaly": {"enabled": True, "model": "m"}, **specialist_settings},
        }
    )


def _frames(n: int) -> list[Frame]:
    out = []
    for i in range(n):
        image = render_part(SimulationSettings(size=256, seed=3), i, defect=None).image
        data = encode_png(image)
        out.append(Frame(image, "t", "cam1", datetime.now(UTC), sha256_hex(data), "test://", data))
    return out


class _Exploding:
    name, version, providers = "ocr", "x", ()

    def __init__(self, **_: object) -> None:
        pass

    def inspect(self, frames: Sequence[Frame]) -> list[list[Finding]]:
        raise RuntimeError("camera label reader crashed")


class _NeverBuilt:
    def __init__(self, **_: object) -> None:
        raise AssertionError("a disabled specialist was loaded")


def test_disabled_specialist_is_never_loaded(
    monkeypatch: pytest.MonkeyPatch, anomaly_model_dir: Path
) -> None:
    monkeypatch.setattr(orchestrator, "inspector_class", lambda name: _NeverBuilt)
    built = build_orchestrator(_line(ocr={"enabled": False}), {"m": anomaly_model_dir})
    assert [i.name for i in built.inspectors] == ["anomaly"] and built.describer is None


def test_failing_specialist_is_recorded_and_others_go_on(
    monkeypatch: pytest.MonkeyPatch, anomaly_model_dir: Path
) -> None:
    monkeypatch.setattr(orchestrator, "inspector_class", lambda name: _Exploding)
    built = build_orchestrator(_line(ocr={"pattern": "A.*"}, describe={}), {"m": anomaly_model_dir})
    results = built.inspect(_frames(3))
    for r in results:
        kinds = [f.kind for f in r.findings]
        assert (
            FindingKind.ANOMALY in kinds and FindingKind.ERROR in kinds and FindingKind.DESCRIPTION in kinds
        )
        assert r.decision is not Decision.PASS and "ocr failed" in r.reason
        assert set(r.timings_ms) == {"anomaly", "ocr", "describe"}


def test_config_hash_changes_with_specialist_settings(anomaly_model_dir: Path) -> None:
    a = build_orchestrator(_line(), {"m": anomaly_model_dir})
    b = build_orchestrator(_line(describe={}), {"m": anomaly_model_dir})
    assert a.config_hash != b.config_hash


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("text_ok", Decision.PASS),
        ("text_missing", Decision.FAIL),
        ("text_mismatch", Decision.FAIL),
        ("text_unreadable", Decision.REVIEW),
        ("text_poor_print", Decision.FAIL),
    ],
)
def test_text_findings_tighten_the_decision(label: str, expected: Decision) -> None:
    findings = [
        Finding("anomaly", "v", FindingKind.ANOMALY, score=1.0),
        Finding("ocr", "v", FindingKind.TEXT, score=0.9, label=label, text="A1-0000"),
    ]
    assert decide_findings(findings, Thresholds(5.0, 9.0)).decision is expected


def test_no_findings_goes_to_review() -> None:
    assert decide_findings([], Thresholds(1.0, 2.0)).decision is Decision.REVIEW
