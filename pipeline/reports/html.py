"""The report as one self-contained HTML page: figures and thumbnails are embedded as
data URIs and the style is inline, so the file can be mailed or archived and opened
without a network or the data folder."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline.reports.plots import HEATMAP_FULL_SCALE

_ENVIRONMENT = Environment(
    loader=PackageLoader("pipeline.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,  # a missing field is a bug in the report, not an empty cell
)


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


_ENVIRONMENT.filters["number"] = _number
_ENVIRONMENT.filters["percent"] = _percent
_ENVIRONMENT.globals["heatmap_full_scale"] = HEATMAP_FULL_SCALE


def render_report(document: dict[str, Any], figures: dict[str, str], worst: list[dict[str, Any]]) -> str:
    return _ENVIRONMENT.get_template("report.html.j2").render(doc=document, figures=figures, worst=worst)
