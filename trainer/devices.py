"""Device selection shared by the CLIs. torch is imported where needed, so `cpu_name` serves a
launch that does not load torch."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cuda", "cpu")
# Set (to anything but "" or "0") to treat bf16 as not native, e.g. to emulate an AVX2-only CPU
# with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 on a CPU that has AVX512-BF16.
NO_NATIVE_BF16 = "NSTCAM_NO_NATIVE_BF16"
# Caps of oneDNN's and ATen's instruction sets that leave no native bf16 kernels: set on a CPU that
# has them (to emulate an older one), bf16 would run emulated, slower than fp32, so it counts as
# not native even without NO_NATIVE_BF16.
ISA_CAPS_WITHOUT_BF16 = {
    "ONEDNN_MAX_CPU_ISA": {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"},
    "ATEN_CPU_CAPABILITY": {"default", "avx2"},
}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` prefers CUDA; asking for CUDA without one is an error, not a silent CPU fallback."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: unknown device; choose one of {', '.join(DEVICE_CHOICES)}") from None


def bf16_ruled_out_by_env() -> str | None:
    """The environment setting that makes bf16 not native here (e.g. "ONEDNN_MAX_CPU_ISA=AVX2"), or None."""
    if os.environ.get(NO_NATIVE_BF16, "") not in ("", "0"):
        return f"{NO_NATIVE_BF16}={os.environ[NO_NATIVE_BF16]}"
    for name, caps in ISA_CAPS_WITHOUT_BF16.items():
        value = os.environ.get(name, "")
        if value.upper() in {c.upper() for c in caps}:
            return f"{name}={value}"
    return None


def cpu_bf16_supported() -> bool:
    """Native bf16 on this CPU (AVX512-BF16 or AMX) and not capped by the environment: only then can
    bf16 beat fp32."""
    import torch

    if bf16_ruled_out_by_env() is not None:
        return False
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(torch.cpu, name, None)
        try:
            if check is not None and check():
                return True
        except Exception:
            pass
    return False


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
