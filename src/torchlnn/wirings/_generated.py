"""Wirings generated from a few numbers and a seed: FullyConnected, Random, NCP and AutoNCP.

Each generator draws the synapses between neurons when it is constructed and the sensory
synapses when ``build(input_dim)`` runs, from two separate random streams derived from ``seed``.
The same arguments and seed therefore give the same adjacency matrices, and the synapses between
neurons do not depend on the input size. ``get_config`` also stores the matrices themselves, so
``from_config`` rebuilds a wiring exactly even if NumPy's random streams change between versions.

Polarities: FullyConnected and Random draw -1 (inhibitory) with probability 1/3 and +1 with
probability 2/3; NCP draws both with probability 1/2. These are the proportions of ncps 1.0.1,
but the draws themselves differ, so a given seed gives other matrices than in ncps.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._base import Wiring, check_positive_int, check_seed, reject_unexpected_options


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Return independent generators for the internal and the sensory synapses."""
    return np.random.default_rng([seed, 0]), np.random.default_rng([seed, 1])


def _random_polarity(rng: np.random.Generator, shape, p_inhibitory: float) -> np.ndarray:
    return np.where(rng.random(shape) < p_inhibitory, -1, 1).astype(np.int32)


def _check_fraction(name: str, value: Any, low: float, high: float, high_inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    inside = low <= value <= high if high_inclusive else low <= value < high
    if not inside:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in [{low}, {high}{bracket}, got {value}.")
    return value


class FullyConnected(Wiring):
    """Every neuron connects to every neuron, and every input to every neuron.

    Args:
        units: number of neurons N.
        output_dim: number of motor neurons, the first ``output_dim`` neurons (default N: every
            neuron is an output).
        self_connections: whether each neuron also has a synapse onto itself.
        seed: seed of the random polarities.

    ``LTC(input_size, N)`` and ``CfC(input_size, N)`` with an int use ``FullyConnected(N)``.
    """

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        self_connections: bool = True,
        seed: int = 1111,
        **unexpected: Any,
    ):
        reject_unexpected_options("FullyConnected", unexpected)
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        self.self_connections = bool(self_connections)
        self.seed = check_seed(seed)
        internal_rng, self._sensory_rng = _streams(self.seed)

        polarity = _random_polarity(internal_rng, (self.units, self.units), 1 / 3)
        if not self.self_connections:
            np.fill_diagonal(polarity, 0)
        self.adjacency_matrix = polarity

    def _connect_sensory(self) -> None:
        shape = (self.input_dim, self.units)
        self.sensory_adjacency_matrix = _random_polarity(self._sensory_rng, shape, 1 / 3)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "class": "FullyConnected",
                "self_connections": self.self_connections,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FullyConnected:
        wiring = cls(
            config["units"],
            output_dim=config["output_dim"],
            self_connections=config["self_connections"],
            seed=config["seed"],
        )
        if config.get("input_dim") is not None:
            wiring.build(config["input_dim"])
        wiring._restore_matrices(config)
        return wiring


class Random(Wiring):
    """A random subset of all possible synapses, of a chosen sparsity.

    Args:
        units: number of neurons N.
        output_dim: number of motor neurons, the first ``output_dim`` neurons (default N).
        sparsity_level: fraction of the possible synapses left out, in [0, 1). The layer keeps
            ``round(N * N * (1 - sparsity_level))`` synapses between neurons and
            ``round(I * N * (1 - sparsity_level))`` from its I inputs.
        seed: seed of the synapse choice and polarities.
    """

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        sparsity_level: float = 0.0,
        seed: int = 1111,
        **unexpected: Any,
    ):
        reject_unexpected_options("Random", unexpected)
        super().__init__(units)
        self.set_output_dim(self.units if output_dim is None else output_dim)
        self.sparsity_level = _check_fraction("sparsity_level", sparsity_level, 0.0, 1.0, False)
        self.seed = check_seed(seed)
        internal_rng, self._sensory_rng = _streams(self.seed)
        self.adjacency_matrix = self._draw(internal_rng, self.units, self.units)

    def _draw(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        count = int(round(rows * cols * (1.0 - self.sparsity_level)))
        chosen = rng.choice(rows * cols, size=count, replace=False)
        matrix = np.zeros(rows * cols, dtype=np.int32)
        matrix[chosen] = _random_polarity(rng, count, 1 / 3)
        return matrix.reshape(rows, cols)

    def _connect_sensory(self) -> None:
        self.sensory_adjacency_matrix = self._draw(self._sensory_rng, self.input_dim, self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {"class": "Random", "sparsity_level": self.sparsity_level, "seed": self.seed}
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Random:
        wiring = cls(
            config["units"],
            output_dim=config["output_dim"],
            sparsity_level=config["sparsity_level"],
            seed=config["seed"],
        )
        if config.get("input_dim") is not None:
            wiring.build(config["input_dim"])
        wiring._restore_matrices(config)
        return wiring


_NCP_ARGUMENTS = (
    "inter_neurons",
    "command_neurons",
    "motor_neurons",
    "sensory_fanout",
    "inter_fanout",
    "recurrent_command_synapses",
    "motor_fanin",
    "seed",
)


class NCP(Wiring):
    """A neural circuit policy: sensory -> inter -> command -> motor, with command recurrence.

    Neuron indices are ordered motor, command, inter: the first ``motor_neurons`` indices are
    the outputs. The layers, nearest the input first, are inter, command and motor.

    Synapses (each with polarity +1 or -1, equally likely):

    * sensory -> inter: each input feature reaches ``sensory_fanout`` distinct inter neurons;
      an inter neuron left without input then gets ``max(1, I * sensory_fanout // inter)``
      inputs.
    * inter -> command: each inter neuron reaches ``inter_fanout`` distinct command neurons; a
      command neuron left without input gets ``max(1, inter * inter_fanout // command)`` inputs.
    * command -> command: ``recurrent_command_synapses`` distinct (source, target) pairs, self
      synapses included.
    * command -> motor: each motor neuron receives ``motor_fanin`` distinct command neurons; a
      command neuron left without a target reaches ``max(1, motor * motor_fanin // command)``
      motor neurons.

    Args:
        inter_neurons: number of inter neurons (second layer after the inputs).
        command_neurons: number of command neurons.
        motor_neurons: number of motor neurons, the outputs.
        sensory_fanout: synapses from each input to inter neurons, in [1, inter_neurons].
        inter_fanout: synapses from each inter neuron to command neurons, in
            [1, command_neurons].
        recurrent_command_synapses: synapses among command neurons, in
            [0, command_neurons ** 2].
        motor_fanin: synapses into each motor neuron from command neurons, in
            [1, command_neurons].
        seed: seed of the synapse choice and polarities.

    The NCP paper's lane-keeping circuit is ``NCP(12, 6, 1, 6, 4, 6, 6)``: 19 neurons.
    """

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
        **unexpected: Any,
    ):
        reject_unexpected_options(type(self).__name__, unexpected)
        inter = check_positive_int("inter_neurons", inter_neurons)
        command = check_positive_int("command_neurons", command_neurons)
        motor = check_positive_int("motor_neurons", motor_neurons)
        super().__init__(inter + command + motor)
        self.set_output_dim(motor)
        self.inter_neurons = inter
        self.command_neurons = command
        self.motor_neurons = motor
        self.sensory_fanout = self._check_range("sensory_fanout", sensory_fanout, 1, inter)
        self.inter_fanout = self._check_range("inter_fanout", inter_fanout, 1, command)
        self.recurrent_command_synapses = self._check_range(
            "recurrent_command_synapses", recurrent_command_synapses, 0, command * command
        )
        self.motor_fanin = self._check_range("motor_fanin", motor_fanin, 1, command)
        self.seed = check_seed(seed)

        # Neuron indices: motor first, then command, then inter.
        self._motor_ids = np.arange(0, motor)
        self._command_ids = np.arange(motor, motor + command)
        self._inter_ids = np.arange(motor + command, self.units)

        internal_rng, self._sensory_rng = _streams(self.seed)
        self._connect_inter_to_command(internal_rng)
        self._connect_command_recurrence(internal_rng)
        self._connect_command_to_motor(internal_rng)

    @staticmethod
    def _check_range(name: str, value: Any, low: int, high: int) -> int:
        value = check_positive_int(name, value, minimum=0)
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}] for this circuit, got {value}.")
        return value

    # ------------------------------------------------------------------ structure

    @property
    def num_layers(self) -> int:
        return 3

    def get_neurons_of_layer(self, layer_id: int) -> list[int]:
        ids = {0: self._inter_ids, 1: self._command_ids, 2: self._motor_ids}
        if layer_id not in ids:
            raise ValueError(f"NCP has layers 0 (inter), 1 (command), 2 (motor); got {layer_id}.")
        return ids[layer_id].tolist()

    def get_type_of_neuron(self, neuron_id: int) -> str:
        self._check_neuron_id(neuron_id)
        if neuron_id < self.motor_neurons:
            return "motor"
        if neuron_id < self.motor_neurons + self.command_neurons:
            return "command"
        return "inter"

    # ------------------------------------------------------------------ generation

    def _fan_out(
        self,
        rng: np.random.Generator,
        matrix: np.ndarray,
        sources: np.ndarray,
        targets: np.ndarray,
        fanout: int,
    ) -> None:
        """Connect each source to ``fanout`` distinct targets, then give orphan targets inputs."""
        for src in sources:
            for dst in rng.choice(targets, size=fanout, replace=False):
                matrix[src, dst] = rng.choice((-1, 1))
        orphans = [dst for dst in targets if not matrix[sources, dst].any()]
        fanin = int(np.clip(len(sources) * fanout // len(targets), 1, len(sources)))
        for dst in orphans:
            for src in rng.choice(sources, size=fanin, replace=False):
                matrix[src, dst] = rng.choice((-1, 1))

    def _connect_inter_to_command(self, rng: np.random.Generator) -> None:
        self._fan_out(
            rng, self.adjacency_matrix, self._inter_ids, self._command_ids, self.inter_fanout
        )

    def _connect_command_recurrence(self, rng: np.random.Generator) -> None:
        pairs = rng.choice(
            self.command_neurons**2, size=self.recurrent_command_synapses, replace=False
        )
        for pair in pairs:
            src = self._command_ids[pair // self.command_neurons]
            dst = self._command_ids[pair % self.command_neurons]
            self.adjacency_matrix[src, dst] = rng.choice((-1, 1))

    def _connect_command_to_motor(self, rng: np.random.Generator) -> None:
        matrix = self.adjacency_matrix
        for dst in self._motor_ids:
            for src in rng.choice(self._command_ids, size=self.motor_fanin, replace=False):
                matrix[src, dst] = rng.choice((-1, 1))
        unused = [src for src in self._command_ids if not matrix[src, self._motor_ids].any()]
        fanout = int(
            np.clip(
                self.motor_neurons * self.motor_fanin // self.command_neurons,
                1,
                self.motor_neurons,
            )
        )
        for src in unused:
            for dst in rng.choice(self._motor_ids, size=fanout, replace=False):
                matrix[src, dst] = rng.choice((-1, 1))

    def _connect_sensory(self) -> None:
        inputs = np.arange(self.input_dim)
        # Work in an (I + N)-node matrix so that _fan_out can index sources and targets together.
        joint = np.zeros((self.input_dim + self.units, self.input_dim + self.units), np.int32)
        self._fan_out(
            self._sensory_rng,
            joint,
            inputs,
            self._inter_ids + self.input_dim,
            self.sensory_fanout,
        )
        self.sensory_adjacency_matrix = joint[: self.input_dim, self.input_dim :].copy()

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["class"] = "NCP"
        config.update({name: getattr(self, name) for name in _NCP_ARGUMENTS})
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NCP:
        wiring = NCP(**{name: config[name] for name in _NCP_ARGUMENTS})
        if config.get("input_dim") is not None:
            wiring.build(config["input_dim"])
        wiring._restore_matrices(config)
        return wiring


class AutoNCP(NCP):
    """An NCP sized from the total number of neurons, the outputs and a sparsity level.

    Of the ``units - output_size`` non-motor neurons, 40% (at least one) are command neurons
    and the rest inter neurons. With density ``d = 1 - sparsity_level``:
    ``sensory_fanout = max(1, int(inter * d))``, ``inter_fanout = max(1, int(command * d))``,
    ``recurrent_command_synapses = max(1, int(2 * command * d))`` and
    ``motor_fanin = max(1, int(command * d))``. These are the proportions of ncps 1.0.1.

    Args:
        units: total number of neurons; at least ``output_size + 3`` (one command neuron and
            two inter neurons at the least).
        output_size: number of motor neurons, the outputs.
        sparsity_level: in [0.0, 0.9]; 0.0 is the densest circuit.
        seed: seed of the synapse choice and polarities.
    """

    SPARSITY_RANGE = (0.0, 0.9)

    def __init__(
        self,
        units: int,
        output_size: int,
        sparsity_level: float = 0.5,
        seed: int = 22222,
        **unexpected: Any,
    ):
        reject_unexpected_options("AutoNCP", unexpected)
        units = check_positive_int("units", units)
        output_size = check_positive_int("output_size", output_size)
        if output_size > units - 3:
            raise ValueError(
                f"AutoNCP needs at least 3 neurons besides the {output_size} motor neurons (one "
                f"command and two inter neurons), so output_size must be at most units - 3; got "
                f"units={units} and output_size={output_size}. Increase units to at least "
                f"{output_size + 3} or reduce output_size."
            )
        low, high = self.SPARSITY_RANGE
        if isinstance(sparsity_level, bool) or not isinstance(sparsity_level, numbers.Real):
            raise TypeError(
                f"sparsity_level must be a number in [{low}, {high}], got {sparsity_level!r} "
                f"({type(sparsity_level).__name__})."
            )
        if not low <= float(sparsity_level) <= high:
            raise ValueError(
                f"sparsity_level must be in [{low}, {high}], got {sparsity_level}."
            )
        self.output_size = output_size
        self.sparsity_level = float(sparsity_level)

        density = 1.0 - self.sparsity_level
        non_motor = units - output_size
        command = max(int(0.4 * non_motor), 1)
        inter = non_motor - command
        super().__init__(
            inter_neurons=inter,
            command_neurons=command,
            motor_neurons=output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=min(max(int(command * density * 2), 1), command**2),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "class": "AutoNCP",
                "output_size": self.output_size,
                "sparsity_level": self.sparsity_level,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AutoNCP:
        wiring = cls(
            config["units"],
            config["output_size"],
            sparsity_level=config["sparsity_level"],
            seed=config["seed"],
        )
        if config.get("input_dim") is not None:
            wiring.build(config["input_dim"])
        wiring._restore_matrices(config)
        return wiring
