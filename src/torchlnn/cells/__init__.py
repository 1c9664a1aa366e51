"""Cells: one time step of a liquid network.

``LTCCell`` solves the liquid time-constant ODE with a solver; ``CfCCell`` and
``WiredCfCCell`` use its closed-form approximation. Every cell has the same interface:
``forward(input, hx=None, dt=1.0) -> (output, h)``, and for the sequence layers'
time loop ``prepare_inputs``, ``advance`` and ``readout``.
"""

from __future__ import annotations

from .cfc import CfCCell, LeCunTanh
from .lstm import MixedMemoryLSTMCell
from .ltc import LTCCell
from .wired_cfc import WiredCfCCell

__all__ = ["LTCCell", "CfCCell", "WiredCfCCell", "MixedMemoryLSTMCell", "LeCunTanh"]
