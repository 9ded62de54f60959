"""What this CPU offers that changes ONNX Runtime's kernels."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

_CPUINFO = Path("/proc/cpuinfo")
# Instructions that multiply uint8 by int8 and add into 32 bits: ONNX Runtime's fast 8-bit product, which
# does not saturate. Without them (plain AVX2 / AVX-512F) its uint8 × int8 product adds pairs in 16 bits.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
SPEED_FLAGS = ("avx2", "avx512f", *INT8_DOT_PRODUCT_FLAGS)


@cache
def cpu_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (model name, flags); empty where there is none."""
    if not _CPUINFO.is_file():
        return {}
    fields: dict[str, str] = {}
    for line in _CPUINFO.read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags() -> set[str]:
    return set(cpu_fields().get("flags", "").split())


def has_int8_dot_product() -> bool:
    return any(flag in cpu_flags() for flag in INT8_DOT_PRODUCT_FLAGS)


def cpu_description() -> str:
    """The CPU's model name and the vector extensions that change ONNX Runtime's kernels, so that a
    printed figure names its machine."""
    name = cpu_fields().get("model name") or platform.processor() or platform.machine()
    present = [flag for flag in SPEED_FLAGS if flag in cpu_flags()]
    return f"{name} ({', '.join(present) or 'no AVX2'})"
