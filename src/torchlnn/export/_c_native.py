"""The generated C step, compiled into a shared library and called from Python.

``to_c`` writes C for a microcontroller. The same source, compiled for the desktop, is also
the fastest way to run a small controller from Python. A control step of the 19-neuron
lane-keeping NCP takes microseconds in C. Eager PyTorch needs tens of microseconds for it,
most of them spent dispatching a few dozen tiny operations.

``compile_c`` builds the library with the system compiler, and ``CStep`` calls it through
``ctypes`` and keeps the state between calls. A closed-loop test can so drive the exact code
that goes onto the device.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ._c_export import CExport

DEFAULT_FLAGS: tuple[str, ...] = ("-std=c99", "-O2")


def _find_compiler(compiler: str | None) -> str:
    """Return the compiler command: ``compiler``, else ``$CC``, else cc, gcc or clang."""
    candidates = [compiler] if compiler else [os.environ.get("CC"), "cc", "gcc", "clang"]
    for candidate in candidates:
        if candidate and shutil.which(candidate):
            return candidate
    requested = repr(compiler) if compiler else "$CC, cc, gcc or clang"
    raise RuntimeError(
        f"compile_c needs a C compiler, and {requested} was not found on PATH. Install gcc or "
        "clang, or pass compiler='/path/to/cc'."
    )


def compile_c(
    export: CExport,
    *,
    compiler: str | None = None,
    flags: Sequence[str] = DEFAULT_FLAGS,
) -> CStep:
    """Compile the C that ``to_c`` wrote into a shared library and load it as a ``CStep``.

    The library ``lib<name>.so`` (``.dylib`` on macOS, ``.dll`` on Windows) is written next to
    the source. Build once, then load the file again in other processes with
    ``CStep(export, library)``.

    Args:
        export: what ``to_c`` returned.
        compiler: the compiler command; by default ``$CC``, then cc, gcc or clang.
        flags: compiler flags added before ``-shared -fPIC``; optimisation ``-O2`` by default.

    Returns:
        a ``CStep`` with the state at zeros.

    Raises:
        TypeError: ``export`` is not a ``CExport``, or ``flags`` is a single string.
        RuntimeError: no compiler was found, or it failed (its message is included).
    """
    if not isinstance(export, CExport):
        raise TypeError(
            f"compile_c expects what to_c returned (a CExport), got {type(export).__name__}. "
            "Call compile_c(to_c(model, folder))."
        )
    if isinstance(flags, str):
        raise TypeError(
            f"compile_c: flags must be a sequence of strings, got the string {flags!r}. "
            f"Pass a list, e.g. flags=[{flags!r}]."
        )
    command = _find_compiler(compiler)
    suffix = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")
    library = export.source.with_name(f"lib{export.name}{suffix}")
    arguments = [command, *flags, "-shared", "-fPIC", str(export.source), "-o", str(library)]
    arguments.append("-lm")
    result = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"compile_c: `{shlex.join(arguments)}` failed with exit code {result.returncode}:\n"
            f"{result.stderr.strip()}"
        )
    return CStep(export, library)


class CStep:
    """One network step in compiled C, called through ``ctypes``, with the state kept here.

    Example::

        export = torchlnn.export.to_c(layer, folder, name="driver")
        step = torchlnn.export.compile_c(export)
        for observation in observations:       # each (I,): a numpy array, tensor or list
            action = step(observation, dt=0.05)  # numpy array (O,), float32
        step.reset()                           # zeros, at the start of the next episode

    The step computes in float32 and matches ``StepModule`` to about 1e-6. It is not
    thread-safe: give each thread its own ``CStep``.

    Args:
        export: what ``to_c`` returned.
        library: the compiled shared library (from ``compile_c``).

    Attributes:
        input_size, output_size, state_size: I, O and S of the generated code.
    """

    def __init__(self, export: CExport, library: str | os.PathLike):
        self.export = export
        self.library = Path(library)
        self.input_size = export.input_size
        self.output_size = export.output_size
        self.state_size = export.state_size
        self._lib = ctypes.CDLL(str(self.library))
        self._step = getattr(self._lib, f"{export.name}_step")
        self._step.restype = None
        self._step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p]

        # Numpy arrays that own the memory the C function reads and writes, and their
        # addresses, taken once: building ctypes pointers on every call costs microseconds.
        self._input = np.zeros(self.input_size, dtype=np.float32)
        self._output = np.zeros(self.output_size, dtype=np.float32)
        self._state = np.zeros(self.state_size, dtype=np.float32)
        self._addresses = (
            self._state.ctypes.data,
            self._input.ctypes.data,
            self._output.ctypes.data,
        )

    def reset(self) -> None:
        """Set the state to zeros, as at the start of an episode."""
        self._state.fill(0.0)

    @property
    def state(self) -> np.ndarray:
        """A copy of the state (S,): ``h``, then ``c`` with mixed memory."""
        return self._state.copy()

    @state.setter
    def state(self, value) -> None:
        value = np.asarray(value, dtype=np.float32)
        if value.shape != (self.state_size,):
            raise ValueError(
                f"CStep.state must have shape ({self.state_size},), got {value.shape}. Pass "
                "the state of one sample, e.g. StepModule's state[0]."
            )
        self._state[:] = value

    def __call__(self, input, dt: float = 1.0) -> np.ndarray:
        """Advance one step on ``input`` (I,) with elapsed time ``dt`` and return the output (O,).

        ``input`` may be a numpy array, a CPU tensor (without gradient) or a sequence of
        floats. The returned array is new on every call.
        """
        try:
            # Tensor.numpy() shares memory and costs a microsecond less than np.asarray.
            if isinstance(input, torch.Tensor):
                array = input.numpy()
            else:
                array = np.asarray(input, dtype=np.float32)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(
                f"CStep failed to read the observation as float32 numbers ({error}). Pass a "
                "numpy array, a CPU tensor (detached) or a list of floats."
            ) from error
        if array.shape != self._input.shape:
            raise ValueError(
                f"CStep expects one observation of shape ({self.input_size},), got "
                f"{array.shape}. Call it once per sample: the C step has no batch dimension."
            )
        dt = float(dt)
        if not dt >= 0.0:  # the comparison is also false for NaN
            raise ValueError(f"CStep needs an elapsed time dt >= 0, got {dt}.")
        self._input[:] = array
        state, inputs, output = self._addresses
        self._step(state, inputs, dt, output)
        return self._output.copy()

    step = __call__

    def __repr__(self) -> str:
        return (
            f"CStep({self.export.name!r}, input_size={self.input_size}, "
            f"output_size={self.output_size}, state_size={self.state_size})"
        )
