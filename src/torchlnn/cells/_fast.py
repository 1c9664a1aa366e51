"""Shared pieces of the cells' fast paths: when they apply, and a cache of derived tensors.

Each cell keeps its plain ``prepare_inputs`` / ``advance`` / ``readout`` methods as the
reference. A fast path computes the same function with fewer, larger operations: it derives
tensors from the parameters once per call (folded weights, synapse lists), runs the time loop
with them, and during training uses a ``torch.autograd.Function`` with a hand-written backward.
Tests in ``tests/perf`` check every fast path against the reference.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from torchlnn._compat import is_autocast_enabled, is_exporting


def grad_needed(module: nn.Module, *tensors: Tensor | None) -> bool:
    """Return True when autograd must record this call: grad mode is on and something requires
    grad (a parameter of ``module`` or one of ``tensors``)."""
    if not torch.is_grad_enabled():
        return False
    if any(t is not None and t.requires_grad for t in tensors):
        return True
    return any(t.requires_grad for t in module_tensors(module))


def autocast_active(device_type: str) -> bool:
    """Return True when autocast is enabled for ``device_type``; fast paths then step aside."""
    return is_autocast_enabled(device_type)


# The fast paths must tell eager calls from ``torch.export``, which they cannot follow. Without
# ``torch.compiler.is_exporting`` (PyTorch 2.2 lacks it) every call runs the reference.
FAST_PATHS_SUPPORTED = hasattr(torch.compiler, "is_exporting")

# The dtypes that the fast paths run in; others (float16, bfloat16) use the reference,
# because some of the sparse kernels have no half-precision version on the CPU.
FAST_DTYPES = (torch.float32, torch.float64)


def exporting() -> bool:
    """Return True while a model is traced or exported (``torch.jit.trace``, ONNX export,
    ``torch.export``). The fast paths then step aside: an exported graph needs the plain
    reference operations, not their caches, sparse products and autograd Functions."""
    tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
    return tracing or is_exporting()


# PyTorch's grain size for parallel element-wise CPU kernels (at::internal::GRAIN_SIZE).
PARALLEL_GRAIN = 32768


@contextmanager
def step_threads(elements: int) -> Iterator[None]:
    """Run a per-step loop on one intra-op thread when its operations are small.

    Below ``PARALLEL_GRAIN`` output elements PyTorch keeps element-wise kernels serial, but
    MKL's sparse and dense matrix products still start parallel regions. For operations of a
    few microseconds the thread synchronisation costs more than it saves, and on a machine
    whose cores are shared with other work a parallel region can wait milliseconds for a
    descheduled thread. So the loop sets ``torch.set_num_threads(1)`` and restores the
    previous value afterwards. NOTE: the setting is process-wide, so torch work in another
    Python thread during the loop also runs on one thread.
    """
    threads = torch.get_num_threads()
    if threads == 1 or elements >= PARALLEL_GRAIN:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class DerivedCache:
    """Tensors derived from a module's parameters, reused while the parameters are unchanged.

    Only used when autograd does not record (inference), because a cached tensor carries no
    graph. An entry is valid while every submodule and parameter is the same object. Every
    parameter must also keep its version counter, which in-place updates such as an optimiser
    step or ``load_state_dict`` bump, and its data pointer, which ``.to()`` and assigning
    ``.data`` change. The entry holds references to the parameters, so their
    memory cannot be reused by new tensors while the entry lives. Buffers are not checked:
    the cells' buffers describe the wiring, which ``load_state_dict`` refuses to change, and
    ``.to()`` moves them together with the parameters. NOTE: editing a wiring buffer in place
    leaves stale entries behind.
    """

    # Entries kept per module; a cell called with many different elapsed times rebuilds.
    max_entries = 8

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[nn.Module, dict[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, module: nn.Module, key: Any, build: Callable[[], Any]) -> Any:
        """Return the cached value for ``(module, key)``, calling ``build()`` under
        ``torch.no_grad()`` when stale.

        Inside ``torch.inference_mode`` the entries are separate: tensors made there are
        inference tensors, which cannot be updated in place outside it.
        """
        key = (key, torch.is_inference_mode_enabled())
        entries = self._entries.get(module)
        if entries is None:
            entries = {}
            self._entries[module] = entries
        entry = entries.get(key)
        if entry is not None and entry[0].unchanged():
            return entry[1]
        snapshot = _Snapshot(module)
        with torch.no_grad():  # a cached tensor must carry no autograd graph
            value = build()
        entries.pop(key, None)
        while len(entries) >= self.max_entries:
            entries.pop(next(iter(entries)))  # the oldest entry
        entries[key] = (snapshot, value)
        return value

    def clear(self, module: nn.Module) -> None:
        """Forget every entry of ``module``."""
        self._entries.pop(module, None)


class _Snapshot:
    """The identity, version and data pointer of every parameter of a module tree."""

    def __init__(self, module: nn.Module):
        self.modules: list[tuple[dict, str, nn.Module]] = []
        self.parameters: list[tuple[dict, str, Tensor, int, int]] = []
        self._record(module)

    def _record(self, module: nn.Module) -> None:
        for name, tensor in module._parameters.items():
            if tensor is not None:
                entry = (module._parameters, name, tensor, _version(tensor), tensor.data_ptr())
                self.parameters.append(entry)
        for name, child in module._modules.items():
            if child is not None:
                self.modules.append((module._modules, name, child))
                self._record(child)

    def unchanged(self) -> bool:
        # Called on every cached step, so it reads each attribute once and calls no helper.
        for modules, name, child in self.modules:
            if modules.get(name) is not child:
                return False
        for parameters, name, tensor, version, pointer in self.parameters:
            if parameters.get(name) is not tensor or tensor.data_ptr() != pointer:
                return False
            if version is not None and tensor._version != version:
                return False
        return True


def _version(tensor: Tensor) -> int | None:
    """Return the version counter, or None for an inference tensor, which has none.

    A tensor stays an inference tensor (or not) for its whole life, so ``unchanged`` skips
    the check for the tensors recorded with None. NOTE: an in-place update of an inference
    tensor (a parameter of a model built inside ``torch.inference_mode``) therefore goes
    unnoticed by the cache.
    """
    return None if tensor.is_inference() else tensor._version


def module_tensors(module: nn.Module, found: list[Tensor] | None = None) -> list[Tensor]:
    """Return every parameter of ``module`` and its children, in a fixed order.

    A direct walk over the modules' dictionaries: ``module.parameters()`` costs several
    microseconds more, which matters for a single control step.
    """
    found = [] if found is None else found
    found.extend(t for t in module._parameters.values() if t is not None)
    for child in module._modules.values():
        if child is not None:
            module_tensors(child, found)
    return found


def thread_workspace(owner: Any, build: Callable[[], Any]) -> Any:
    """Return ``owner``'s workspace for the calling thread, built on first use.

    A workspace contains preallocated buffers and views for a single control step. Each
    thread gets its own, so that concurrent inference from several threads stays correct.
    ``owner`` is a cached derived object, so its workspaces go when the cache rebuilds it.
    """
    spaces = owner.__dict__.setdefault("_workspaces", {})
    ident = threading.get_ident()
    space = spaces.get(ident)
    if space is None:
        space = spaces[ident] = build()
    return space
