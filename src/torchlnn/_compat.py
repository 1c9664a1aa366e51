"""Compatibility with the oldest supported PyTorch (2.2)."""

from __future__ import annotations

import torch


def is_tracing_or_compiling() -> bool:
    """Return whether torch.jit tracing, scripting or torch.compile is capturing this code.

    Value checks that need a Python bool (and so a device sync) are skipped then.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    return is_compiling()


def is_compiling() -> bool:
    """Return whether torch.compile (Dynamo) is capturing this code.

    ``torch.compiler.is_compiling`` appeared in PyTorch 2.3; 2.2 has it in ``torch._dynamo``.
    """
    is_compiling_now = getattr(torch.compiler, "is_compiling", None)
    if is_compiling_now is None:
        from torch import _dynamo

        is_compiling_now = _dynamo.is_compiling
    return bool(is_compiling_now())


def is_exporting() -> bool:
    """Return whether ``torch.export`` is capturing this code.

    ``torch.compiler.is_exporting`` appeared after PyTorch 2.2. On 2.2, ``torch.export`` runs
    through Dynamo, so any Dynamo capture counts: there, code compiled with ``torch.compile``
    also takes the export path.
    """
    is_exporting_now = getattr(torch.compiler, "is_exporting", None)
    if is_exporting_now is not None:
        return bool(is_exporting_now())
    from torch import _dynamo

    return bool(_dynamo.is_compiling())


def is_autocast_enabled(device_type: str) -> bool:
    """Return whether autocast is on for ``device_type`` ("cpu", "cuda", ...).

    ``torch.is_autocast_enabled(device_type)`` appeared after PyTorch 2.2, which has only
    ``torch.is_autocast_enabled()`` for CUDA and ``torch.is_autocast_cpu_enabled()``.
    """
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())
