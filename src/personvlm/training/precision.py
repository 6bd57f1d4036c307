"""Which mixed precision a training device runs natively, if any.

float16 needs loss scaling and only pays on CUDA. bfloat16 needs no scaling and pays on CPUs
with bfloat16 matrix units (Intel AMX, AVX512-BF16): on such a Xeon one training step of the
default model ran ~1.35x faster with encoder stages 5-6 fine-tuned and ~1.5x with stages 3-6, the
bundled configuration (README, "Measured figures"). Elsewhere (AVX2-only CPUs) oneDNN emulates bfloat16 and is slower
than float32, so those train in float32.
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bfloat16 matrix products in hardware (AMX tiles or AVX512-BF16).

    ``torch.cpu``'s feature probes are private; a PyTorch without them means no bfloat16.
    """
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype for ``device`` when mixed precision is ``enabled`` (config ``train.amp``):
    float16 on CUDA, bfloat16 on a CPU with native bfloat16, else None (float32)."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None
