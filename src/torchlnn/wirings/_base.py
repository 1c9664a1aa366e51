"""The ``Wiring`` base class: which neuron feeds which, and with what polarity.

A wiring describes the structure of one recurrent layer of ``units`` neurons:

* ``adjacency_matrix`` (units x units, int): entry ``[src, dst]`` is ``+1`` for an excitatory
  synapse from neuron ``src`` to neuron ``dst``, ``-1`` for an inhibitory one, ``0`` for none.
* ``sensory_adjacency_matrix`` (input_dim x units, int): the same for the synapses from each
  input feature (a sensory neuron) to each neuron. It exists once ``build(input_dim)`` has run.
* ``output_dim``: the number of motor neurons. Motor neurons always come first, so
  ``state[..., :output_dim]`` are the motor neurons in every torchlnn cell.

Subclasses fill the matrices with ``add_synapse`` and ``add_sensory_synapse``. A subclass that
groups its neurons into layers (sensory -> inter -> command -> motor) overrides ``num_layers``,
``get_neurons_of_layer`` and ``get_type_of_neuron``; the wired CfC cell updates the layers in
that order within one time step.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

# Options that belong to a sequence layer, not to a wiring. A wiring that receives one of them
# raises a TypeError that says where the option goes.
_LAYER_OPTIONS = frozenset(
    {
        "return_sequences",
        "batch_first",
        "mixed_memory",
        "proj_size",
        "mode",
        "ode_unfolds",
        "input_size",
        "in_features",
        "solver",
    }
)


def reject_unexpected_options(class_name: str, options: dict[str, Any]) -> None:
    """Raise TypeError for keyword arguments that a wiring constructor does not take."""
    if not options:
        return
    name = sorted(options)[0]
    message = f"{class_name}() got an unexpected keyword argument '{name}'."
    if name in _LAYER_OPTIONS:
        message += (
            f" '{name}' is an option of the sequence layer, not of the wiring: pass it to the "
            f"layer, e.g. CfC(input_size, {class_name}(...), {name}=...)."
        )
    raise TypeError(message)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising if it is not an integer of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def check_seed(value: Any) -> int:
    """Return ``value`` as a non-negative int seed, raising TypeError or ValueError otherwise."""
    return check_positive_int("seed", value, minimum=0)


class Wiring:
    """Connectivity of a layer of ``units`` neurons, and of its inputs to those neurons.

    Args:
        units: number of neurons N (the state size of the cell).

    A plain ``Wiring`` starts with no synapses and one layer of ``inter`` neurons. Build your
    own circuit by subclassing it (see the module docstring) or with ``Wiring.from_matrices``.

    Attributes:
        units: N, the number of neurons.
        input_dim: I, the number of input features, or ``None`` before ``build``.
        output_dim: the number of motor neurons (the first ``output_dim`` neurons).
        adjacency_matrix: int array (N, N) of polarities, ``[src, dst]``.
        sensory_adjacency_matrix: int array (I, N) of polarities, or ``None`` before ``build``.
    """

    def __init__(self, units: int):
        self.units = check_positive_int("units", units)
        self.adjacency_matrix = np.zeros((self.units, self.units), dtype=np.int32)
        self.sensory_adjacency_matrix: np.ndarray | None = None
        self.input_dim: int | None = None
        self.output_dim: int | None = None
        # Explicit structure for wirings rebuilt from matrices or a config; None means
        # "use the methods of the class".
        self._neuron_types: list[str] | None = None
        self._layers: list[list[int]] | None = None

    # ------------------------------------------------------------------ structure

    @property
    def num_layers(self) -> int:
        """Number of neuron layers, updated in order by the wired CfC cell."""
        if self._layers is not None:
            return len(self._layers)
        return 1

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        """Return the neuron indices of layer ``layer_id`` (0 is the layer nearest the input)."""
        if self._layers is not None:
            if not 0 <= layer_id < len(self._layers):
                raise ValueError(
                    f"layer_id must be in [0, {len(self._layers) - 1}], got {layer_id}."
                )
            return list(self._layers[layer_id])
        if layer_id != 0:
            raise ValueError(f"{type(self).__name__} has one layer, so layer_id must be 0.")
        return list(range(self.units))

    def get_type_of_neuron(self, neuron_id: int) -> str:
        """Return the role of neuron ``neuron_id``: "motor", "command", "inter" or a custom name."""
        self._check_neuron_id(neuron_id)
        if self._neuron_types is not None:
            return self._neuron_types[neuron_id]
        output_dim = self.units if self.output_dim is None else self.output_dim
        return "motor" if neuron_id < output_dim else "inter"

    def neuron_types(self) -> list[str]:
        """Return the role of every neuron, in state order."""
        return [self.get_type_of_neuron(i) for i in range(self.units)]

    def layers(self) -> list[list[int]]:
        """Return the neuron indices of every layer, nearest the input first."""
        return [self.get_neurons_of_layer(layer) for layer in range(self.num_layers)]

    def _check_neuron_id(self, neuron_id: int) -> None:
        if not 0 <= neuron_id < self.units:
            raise ValueError(f"neuron_id must be in [0, {self.units - 1}], got {neuron_id}.")

    # ------------------------------------------------------------------ building

    def is_built(self) -> bool:
        """Return whether ``build`` has fixed the number of input features."""
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Fix the number of input features and create the sensory synapses.

        Building twice with the same ``input_dim`` changes nothing. A wiring instance belongs to
        one layer, so building it for another input size raises ValueError.
        """
        input_dim = check_positive_int("input_dim", input_dim)
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise ValueError(
                    f"This {type(self).__name__} wiring is already built for {self.input_dim} "
                    f"input features, but the layer it was passed to has {input_dim}. A wiring "
                    f"instance describes the synapses of one layer: give each layer its own "
                    f"instance (for example, construct the wiring again with the same arguments)."
                )
            return
        self.set_input_dim(input_dim)
        self._connect_sensory()

    def _connect_sensory(self) -> None:
        """Add the sensory synapses once ``input_dim`` is known (no-op in the base class)."""

    def set_input_dim(self, input_dim: int) -> None:
        """Set ``input_dim`` and create an empty sensory adjacency matrix."""
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.sensory_adjacency_matrix = np.zeros((self.input_dim, self.units), dtype=np.int32)

    def set_output_dim(self, output_dim: int) -> None:
        """Set the number of motor neurons (the first ``output_dim`` neurons)."""
        output_dim = check_positive_int("output_dim", output_dim)
        if output_dim > self.units:
            raise ValueError(
                f"output_dim must be at most units={self.units}, got {output_dim}: the motor "
                f"neurons are a subset of the layer's neurons."
            )
        self.output_dim = output_dim

    def add_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add a synapse from neuron ``src`` to neuron ``dest`` with polarity +1 or -1."""
        self._check_polarity(polarity)
        for name, value in (("src", src), ("dest", dest)):
            if not 0 <= value < self.units:
                raise ValueError(
                    f"Synapse {name} must be a neuron index in [0, {self.units - 1}], got {value}."
                )
        self.adjacency_matrix[src, dest] = polarity

    def add_sensory_synapse(self, src: int, dest: int, polarity: int) -> None:
        """Add a synapse from input feature ``src`` to neuron ``dest`` with polarity +1 or -1."""
        if self.input_dim is None or self.sensory_adjacency_matrix is None:
            raise ValueError(
                "Sensory synapses need the number of input features: call build(input_dim) first."
            )
        self._check_polarity(polarity)
        if not 0 <= src < self.input_dim:
            raise ValueError(
                f"Sensory synapse src must be an input index in [0, {self.input_dim - 1}], "
                f"got {src}."
            )
        if not 0 <= dest < self.units:
            raise ValueError(
                f"Sensory synapse dest must be a neuron index in [0, {self.units - 1}], got {dest}."
            )
        self.sensory_adjacency_matrix[src, dest] = polarity

    @staticmethod
    def _check_polarity(polarity: int) -> None:
        if polarity not in (-1, 1):
            raise ValueError(f"Synapse polarity must be -1 or +1, got {polarity!r}.")

    # ------------------------------------------------------------------ counts and initialisers

    @property
    def synapse_count(self) -> int:
        """Number of synapses between neurons of the layer."""
        return int(np.count_nonzero(self.adjacency_matrix))

    @property
    def sensory_synapse_count(self) -> int:
        """Number of synapses from input features to neurons (0 before ``build``)."""
        if self.sensory_adjacency_matrix is None:
            return 0
        return int(np.count_nonzero(self.sensory_adjacency_matrix))

    def erev_initializer(self) -> np.ndarray:
        """Return the initial reversal potentials of the synapses: their polarities (N, N)."""
        return self.adjacency_matrix.astype(np.float64)

    def sensory_erev_initializer(self) -> np.ndarray:
        """Return the initial reversal potentials of the sensory synapses (I, N)."""
        self._require_built("sensory_erev_initializer")
        return self.sensory_adjacency_matrix.astype(np.float64)

    def _require_built(self, what: str) -> None:
        if not self.is_built():
            raise ValueError(
                f"{what} needs the number of input features: call build(input_dim) first, or "
                f"pass the wiring to a layer, which builds it."
            )

    # ------------------------------------------------------------------ copies and configs

    def copy(self) -> Wiring:
        """Return an independent deep copy (built or not, as this one is)."""
        return copy.deepcopy(self)

    @classmethod
    def from_matrices(
        cls,
        adjacency_matrix: Any,
        sensory_adjacency_matrix: Any | None = None,
        output_dim: int | None = None,
        neuron_types: Sequence[str] | None = None,
        layers: Sequence[Sequence[int]] | None = None,
    ) -> Wiring:
        """Build a wiring from explicit polarity matrices.

        Args:
            adjacency_matrix: (N, N) array of -1/0/+1, ``[src, dst]``.
            sensory_adjacency_matrix: (I, N) array of -1/0/+1, or ``None`` to build later.
            output_dim: number of motor neurons (the first ones); default N.
            neuron_types: role of each neuron; default "motor" for the first ``output_dim``
                neurons and "inter" for the rest.
            layers: neuron indices of each layer, nearest the input first; default one layer.
        """
        adjacency = _as_polarity_matrix("adjacency_matrix", adjacency_matrix)
        units = adjacency.shape[1]
        if adjacency.shape != (units, units):
            raise ValueError(
                f"adjacency_matrix must be square (N, N), got shape {adjacency.shape}."
            )
        wiring = Wiring(units)
        wiring.adjacency_matrix = adjacency
        wiring.set_output_dim(units if output_dim is None else output_dim)
        if sensory_adjacency_matrix is not None:
            sensory = _as_polarity_matrix("sensory_adjacency_matrix", sensory_adjacency_matrix)
            if sensory.shape[1] != units:
                raise ValueError(
                    f"sensory_adjacency_matrix must have shape (I, {units}), got {sensory.shape}."
                )
            wiring.set_input_dim(sensory.shape[0])
            wiring.sensory_adjacency_matrix = sensory
        if neuron_types is not None:
            if len(neuron_types) != units:
                raise ValueError(
                    f"neuron_types must name {units} neurons, got {len(neuron_types)} names."
                )
            wiring._neuron_types = [str(name) for name in neuron_types]
        if layers is not None:
            flat = sorted(int(i) for layer in layers for i in layer)
            if flat != list(range(units)):
                raise ValueError(
                    f"layers must contain every neuron index 0..{units - 1} exactly once, "
                    f"got {[list(layer) for layer in layers]}."
                )
            wiring._layers = [[int(i) for i in layer] for layer in layers]
        return wiring

    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serialisable description that ``from_config`` rebuilds exactly."""
        return {
            "class": "Wiring",
            "units": self.units,
            "output_dim": self.output_dim,
            "input_dim": self.input_dim,
            "adjacency_matrix": self.adjacency_matrix.tolist(),
            "sensory_adjacency_matrix": (
                None
                if self.sensory_adjacency_matrix is None
                else self.sensory_adjacency_matrix.tolist()
            ),
            "neuron_types": self.neuron_types(),
            "layers": self.layers(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Wiring:
        """Rebuild a wiring from ``get_config()``: same matrices, roles and layers."""
        return Wiring.from_matrices(
            config["adjacency_matrix"],
            config.get("sensory_adjacency_matrix"),
            output_dim=config.get("output_dim"),
            neuron_types=config.get("neuron_types"),
            layers=config.get("layers"),
        )

    def _restore_matrices(self, config: dict[str, Any]) -> None:
        """Set the matrices stored in ``config``, so a rebuilt wiring matches bit for bit."""
        self.adjacency_matrix = _as_polarity_matrix(
            "adjacency_matrix", config["adjacency_matrix"]
        )
        if config.get("sensory_adjacency_matrix") is not None:
            self.sensory_adjacency_matrix = _as_polarity_matrix(
                "sensory_adjacency_matrix", config["sensory_adjacency_matrix"]
            )
            self.input_dim = self.sensory_adjacency_matrix.shape[0]

    def __repr__(self) -> str:
        built = f"input_dim={self.input_dim}" if self.is_built() else "not built"
        return (
            f"{type(self).__name__}(units={self.units}, output_dim={self.output_dim}, {built}, "
            f"synapses={self.synapse_count}, sensory_synapses={self.sensory_synapse_count})"
        )


def _as_polarity_matrix(name: str, value: Any) -> np.ndarray:
    matrix = np.asarray(value)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got {matrix.ndim} dimensions.")
    if not np.isin(matrix, (-1, 0, 1)).all():
        raise ValueError(f"{name} entries must be -1, 0 or +1, got values {np.unique(matrix)}.")
    return matrix.astype(np.int32)
