"""Sequence data sets for liquid networks: shipped, generated or read from installed packages.

Nothing here downloads. Every loader returns a :class:`SequenceSplits` (train, valid and test
:class:`SequenceData` plus a :class:`DatasetInfo`); :func:`load` picks a loader by name.
The HalfCheetah traces ship with torchlnn and need only numpy; the other data sets need the
``data`` extra (``pip install "torchlnn[data]"``), imported only when used.
"""

from torchlnn.data._registry import available_datasets, load
from torchlnn.data._types import DatasetInfo, SequenceData, SequenceSplits
from torchlnn.data.digits import load_event_digits
from torchlnn.data.halfcheetah import load_halfcheetah
from torchlnn.data.mujoco import load_mujoco
from torchlnn.data.uea import available_uea_datasets, load_uea
from torchlnn.data.xor import load_xor

__all__ = [
    "DatasetInfo",
    "SequenceData",
    "SequenceSplits",
    "available_datasets",
    "available_uea_datasets",
    "load",
    "load_event_digits",
    "load_halfcheetah",
    "load_mujoco",
    "load_uea",
    "load_xor",
]
