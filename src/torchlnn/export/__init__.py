"""Deployment: streaming control, TorchScript, torch.export, ONNX and C99 for microcontrollers.

Every form runs the same step, ``(x, state, dt) -> (output, new_state)`` (``StepModule``), so
none of them depends on the sequence length:

* ``StreamingController``: ``reset()`` then ``step(observation, dt)`` in a control loop.
* ``to_torchscript``, ``to_exported_program``, ``to_onnx``: one step, or whole sequences with
  a dynamic number of steps (a scripted loop, or a ``scan`` that ONNX stores as ``Scan``).
* ``to_c``: a dependency-free C99 source and header with a fixed-memory step function;
  ``compile_c`` builds it into a shared library that Python calls as a ``CStep``.

See docs/deployment.md for a worked example with measured step times.
"""

from __future__ import annotations

from ._c_export import CExport, to_c, write_c_runner
from ._c_native import CStep, compile_c
from ._onnx import ONNX_NAMES, to_onnx
from ._program import to_exported_program
from ._step import SequenceModule, StepModule, StepProtocol
from ._streaming import StreamingController
from ._torchscript import to_torchscript

__all__ = [
    "StepModule",
    "SequenceModule",
    "StepProtocol",
    "StreamingController",
    "to_torchscript",
    "to_exported_program",
    "to_onnx",
    "ONNX_NAMES",
    "to_c",
    "write_c_runner",
    "CExport",
    "compile_c",
    "CStep",
]
