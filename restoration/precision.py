"""Leaving autocast's half precision for the parts that need full precision (losses, the R1 penalty, compositing).

`Tensor.float()` does that but also narrows a float64 tensor to float32, which breaks a run made in float64 (the DDP
equivalence test trains in float64 so that float rounding cannot be amplified into a false mismatch): a narrowed
output met by a float64 network's weights fails in the next convolution. `widen` only ever widens.
"""

from __future__ import annotations

import torch
from torch import Tensor

_HALF = (torch.bfloat16, torch.float16)


def widen(x: Tensor) -> Tensor:
    """bf16/fp16 -> fp32; fp32 and fp64 unchanged."""
    return x.float() if x.dtype in _HALF else x
