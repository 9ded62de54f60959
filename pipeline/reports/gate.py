"""The regression gate: bounds a report's headline figures must meet.

Syntax: comma-separated ``metric OP value`` with OP one of ``>=``, ``<=`` or ``=``.
``=`` means "at least as good as": ``>=`` for a higher-is-better metric (AUROC, AP,
PRO, recall) and ``<=`` for a rate where lower is better (escape, false reject,
review). A bound in the wrong direction (``image_auroc<=0.9``) is allowed but
explicit. A metric the report could not measure (pixel AUROC without masks) misses
its bound: a gate must never pass on missing evidence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError

HIGHER_IS_BETTER = ("image_auroc", "image_ap", "pixel_auroc", "pro", "min_class_recall")
LOWER_IS_BETTER = ("escape_rate", "false_reject_rate", "review_rate")
_BOUND = re.compile(r"\s*([a-z_]+)\s*(>=|<=|=)\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*")


@dataclass(frozen=True, slots=True)
class Bound:
    metric: str
    op: str  # ">=" or "<="
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"

    def holds(self, measured: float | None) -> bool:
        if measured is None:
            return False
        return measured >= self.value if self.op == ">=" else measured <= self.value


@dataclass(frozen=True, slots=True)
class BoundCheck:
    bound: Bound
    measured: float | None

    @property
    def passed(self) -> bool:
        return self.bound.holds(self.measured)

    def describe(self) -> str:
        measured = "not measured" if self.measured is None else f"{self.measured:.4f}"
        return f"{'ok  ' if self.passed else 'MISS'} {self.bound}: measured {measured}"


@dataclass(frozen=True, slots=True)
class GateResult:
    checks: tuple[BoundCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def missed(self) -> tuple[BoundCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)


def parse_bounds(text: str) -> tuple[Bound, ...]:
    """``"image_auroc=0.97,escape_rate<=0.01"`` -> bounds; ConfigError names a bad part or metric."""
    bounds = []
    for part in filter(str.strip, text.split(",")):
        match = _BOUND.fullmatch(part)
        if match is None:
            raise ConfigError(
                f"--fail-under: cannot read {part.strip()!r}; expected METRIC>=X, METRIC<=X "
                "or METRIC=X, e.g. image_auroc=0.97,escape_rate<=0.01"
            )
        metric, op, value = match.groups()
        if metric not in HIGHER_IS_BETTER + LOWER_IS_BETTER:
            raise ConfigError(
                f"--fail-under: unknown metric {metric!r}; known: "
                f"{', '.join(HIGHER_IS_BETTER + LOWER_IS_BETTER)}"
            )
        if op == "=":
            op = ">=" if metric in HIGHER_IS_BETTER else "<="
        bounds.append(Bound(metric, op, float(value)))
    return tuple(bounds)


def check_gate(headline: Mapping[str, float | None], bounds: Sequence[Bound]) -> GateResult:
    """Each bound against the report's headline point values (``GroupMetrics.flat()``)."""
    return GateResult(tuple(BoundCheck(b, headline.get(b.metric)) for b in bounds))
