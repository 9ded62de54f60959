"""Reading the CPU's extensions from /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspectors import cpu_features

_TWO_CORES = """processor\t: 0
model name\t: Example CPU
flags\t\t: fpu sse2 avx2 {extra}

processor\t: 1
model name\t: Example CPU
flags\t\t: fpu sse2 avx2 {extra}
"""


@pytest.mark.parametrize(
    ("extra", "dot_product", "described"),
    [
        ("avx512f avx512_vnni", True, "Example CPU (avx2, avx512f, avx512_vnni)"),
        ("avx_vnni", True, "Example CPU (avx2, avx_vnni)"),
        ("avx512f", False, "Example CPU (avx2, avx512f)"),
    ],
)
def test_the_8_bit_dot_product_is_read_from_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, dot_product: bool, described: str
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(_TWO_CORES.format(extra=extra))
    monkeypatch.setattr(cpu_features, "_CPUINFO", cpuinfo)
    cpu_features.cpu_fields.cache_clear()
    try:
        assert cpu_features.has_int8_dot_product() is dot_product
        assert cpu_features.cpu_description() == described
    finally:
        cpu_features.cpu_fields.cache_clear()


def test_without_cpuinfo_no_dot_product_is_assumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_features, "_CPUINFO", tmp_path / "absent")
    cpu_features.cpu_fields.cache_clear()
    try:
        assert cpu_features.has_int8_dot_product() is False
    finally:
        cpu_features.cpu_fields.cache_clear()
