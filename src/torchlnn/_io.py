"""Saving and loading whole layers (the config and the state dict in one file), and JSON
records written so that a reader never sees half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


def _layer_classes() -> dict[str, type]:
    from torchlnn.layers import LTC, CfC

    return {"LTC": LTC, "CfC": CfC}


def save(module: nn.Module, path: str | os.PathLike) -> None:
    """Save a ``torchlnn.LTC`` or ``torchlnn.CfC`` layer with its config to ``path``.

    The file contains the layer's class name, its ``get_config()`` (the wiring included) and
    its state dict, so ``torchlnn.load(path)`` rebuilds it without the code that created it.
    """
    from torchlnn import __version__

    name = type(module).__name__
    if name not in _layer_classes():
        raise TypeError(
            f"torchlnn.save takes a torchlnn.LTC or torchlnn.CfC layer, got {name}. For other "
            f"modules, save module.state_dict() with torch.save."
        )
    payload = {
        "format": "torchlnn-layer",
        "version": __version__,
        "class": name,
        "config": module.get_config(),
        "state_dict": module.state_dict(),
    }
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"torchlnn.save could not write {os.fspath(path)!r}: the folder {folder!r} does not "
            f"exist. Create it first."
        )
    try:
        torch.save(payload, path)
    except (OSError, RuntimeError) as error:
        raise OSError(f"torchlnn.save could not write {os.fspath(path)!r}: {error}") from error


def load(path: str | os.PathLike, map_location: Any = None) -> nn.Module:
    """Load a layer saved by ``torchlnn.save``; its outputs are bit-identical to the saved one's."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "torchlnn-layer":
        raise ValueError(
            f"{os.fspath(path)!r} is not a file written by torchlnn.save (no 'torchlnn-layer' "
            f"format marker). For a plain state dict, build the layer and call load_state_dict."
        )
    cls = _layer_classes()[payload["class"]]
    module = cls.from_config(payload["config"])
    module.load_state_dict(payload["state_dict"])
    return module


def write_json(path: str | os.PathLike, value: Any, default: Callable[[Any], Any] = str) -> Path:
    """Write ``value`` as indented JSON to ``path`` and return the path.

    The text goes to a temporary file in the same folder, which then replaces ``path``, so a
    run killed while writing leaves the previous file whole. Missing parent folders are
    created. ``default`` converts what JSON cannot encode, as in ``json.dumps``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=2, default=default) + "\n")
    os.replace(temporary, path)
    return path
