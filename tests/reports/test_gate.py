"""The --fail-under rules: parsing, direction of '=', unknown names, missing figures."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from pipeline.reports.gate import Bound, check_gate, parse_bounds


def test_equals_means_at_least_as_good_in_each_metrics_direction() -> None:
    assert parse_bounds("image_auroc=0.97, escape_rate=0.01,false_reject_rate>=0.5") == (
        Bound("image_auroc", ">=", 0.97),
        Bound("escape_rate", "<=", 0.01),
        Bound("false_reject_rate", ">=", 0.5),  # explicit operators are kept as written
    )
    assert parse_bounds("") == ()


def test_unknown_metric_and_unreadable_bound_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown metric 'auroc'"):
        parse_bounds("auroc=0.9")
    with pytest.raises(ConfigError, match="'image_auroc>0.9'"):
        parse_bounds("image_auroc>0.9")


def test_gate_fails_when_a_bound_is_missed_or_not_measured() -> None:
    bounds = parse_bounds("image_auroc=0.97,escape_rate<=0.01,pixel_auroc=0.9")
    result = check_gate({"image_auroc": 0.98, "escape_rate": 0.02, "pixel_auroc": None}, bounds)
    assert not result.passed
    assert [str(c.bound) for c in result.missed] == ["escape_rate <= 0.01", "pixel_auroc >= 0.9"]
    assert "not measured" in result.missed[1].describe()
    assert check_gate({"image_auroc": 0.97, "escape_rate": 0.01, "pixel_auroc": 0.95}, bounds).passed
