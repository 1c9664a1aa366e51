"""Loading data sets by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torchlnn.data._types import SequenceSplits
from torchlnn.data.digits import load_event_digits
from torchlnn.data.halfcheetah import load_halfcheetah
from torchlnn.data.mujoco import load_mujoco
from torchlnn.data.uea import load_uea
from torchlnn.data.xor import load_xor

_LOADERS: dict[str, Callable[..., SequenceSplits]] = {
    "halfcheetah": load_halfcheetah,
    "xor": load_xor,
    "digits": load_event_digits,
    "mujoco-walker2d": partial(load_mujoco, "Walker2d-v5"),
    "mujoco-halfcheetah": partial(load_mujoco, "HalfCheetah-v5"),
    "uea": load_uea,
}


def available_datasets() -> tuple[str, ...]:
    """Names accepted by :func:`load`, sorted."""
    return tuple(sorted(_LOADERS))


def load(name: str, **kwargs: Any) -> SequenceSplits:
    """Load data set ``name`` with its loader's keyword arguments.

    ==================== ==================================================================
    name                 loader
    ==================== ==================================================================
    ``halfcheetah``      :func:`~torchlnn.data.halfcheetah.load_halfcheetah`
    ``xor``              :func:`~torchlnn.data.xor.load_xor` (``encoding="event"|"dense"``)
    ``digits``           :func:`~torchlnn.data.digits.load_event_digits`
    ``mujoco-walker2d``  :func:`~torchlnn.data.mujoco.load_mujoco` with ``Walker2d-v5``
    ``mujoco-halfcheetah`` :func:`~torchlnn.data.mujoco.load_mujoco` with ``HalfCheetah-v5``
    ``uea``              :func:`~torchlnn.data.uea.load_uea` (``dataset="JapaneseVowels"``)
    ==================== ==================================================================
    """
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown data set {name!r}; available: {', '.join(available_datasets())}."
        ) from None
    return loader(**kwargs)
