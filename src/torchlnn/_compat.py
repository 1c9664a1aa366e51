"""Compatibility with the oldest supported PyTorch (2.2)."""

from __future__ import annotations

import torch


def is_tracing_or_compiling() -> bool:
    """Return whether torch.jit tracing, scripting or torch.compile is capturing this code.

    Value checks that need a Python bool (and so a device sync) are skipped then.
    ``torch.compiler.is_compiling`` appeared in PyTorch 2.3; 2.2 has it in ``torch._dynamo``.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    is_compiling = getattr(torch.compiler, "is_compiling", None)
    if is_compiling is None:
        from torch import _dynamo

        is_compiling = _dynamo.is_compiling
    return bool(is_compiling())
