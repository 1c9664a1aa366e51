"""Wirings: the structure of a liquid layer, which neuron feeds which, with what polarity.

``Wiring`` is the base class for your own circuits; ``FullyConnected``, ``Random``, ``NCP`` and
``AutoNCP`` generate common ones from a seed. Every wiring rebuilds exactly from its config:
``from_config(json.loads(json.dumps(wiring.get_config())))``.
"""

from __future__ import annotations

from typing import Any

from ._base import Wiring
from ._generated import NCP, AutoNCP, FullyConnected, Random

__all__ = ["Wiring", "FullyConnected", "Random", "NCP", "AutoNCP", "from_config"]

_CLASSES = {cls.__name__: cls for cls in (Wiring, FullyConnected, Random, NCP, AutoNCP)}


def from_config(config: dict[str, Any]) -> Wiring:
    """Rebuild any wiring from its ``get_config()``.

    Built-in classes come back as themselves. A wiring of a user subclass comes back as a plain
    ``Wiring`` with the same matrices, neuron roles and layers, which is all a cell uses.
    """
    if not isinstance(config, dict) or "adjacency_matrix" not in config:
        raise ValueError(
            "A wiring config must be the dict returned by Wiring.get_config(), with at least "
            f"'adjacency_matrix'; got {type(config).__name__}."
        )
    cls = _CLASSES.get(config.get("class", "Wiring"), Wiring)
    return cls.from_config(config)
