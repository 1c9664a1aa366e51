"""Sequence layers: ``LTC`` and ``CfC`` run a liquid cell over (B, T, F) sequences."""

from __future__ import annotations

from ._sequence import LiquidSequence, SequenceResult
from .cfc import CfC
from .ltc import LTC

__all__ = ["LTC", "CfC", "LiquidSequence", "SequenceResult"]
