"""The LTC sequence layer."""

from __future__ import annotations

import warnings
from typing import Any

from torchlnn.cells import LTCCell
from torchlnn.cells._common import resolve_wiring
from torchlnn.solvers import SOLVERS, Solver
from torchlnn.wirings import Wiring

from ._sequence import LiquidSequence


class LTC(LiquidSequence):
    """A liquid time-constant (LTC) network over a sequence.

    Runs ``torchlnn.LTCCell`` (equations in its docstring) step by step, with the same
    arguments and results as ncps 1.0.1's ``LTC``, plus per-sample ``timespans``,
    variable-length batches and a choice of solver.

    Args:
        input_size: F, the number of input features.
        units: the number of neurons N (a fully connected wiring, every neuron an output) or a
            ``torchlnn.wirings.Wiring``. An unbuilt wiring is built for ``input_size`` in
            place; a wiring built for another input size raises ValueError.
        return_sequences: return the output of every step (True) or of the final state only.
        batch_first: input is (B, T, F) when True, (T, B, F) when False.
        mixed_memory: run an LSTM memory cell before each liquid step
            (``torchlnn.cells.MixedMemoryLSTMCell``); the state becomes ``(h, c)``.
        input_mapping, output_mapping, ode_unfolds, epsilon, solver: as in ``LTCCell``.
        implicit_param_constraints: accepted for ncps compatibility. torchlnn always keeps the
            positive parameters positive by a softplus, so ``False`` has no effect and warns.

    Example::

        >>> import torch, torchlnn
        >>> from torchlnn.wirings import AutoNCP
        >>> rnn = torchlnn.LTC(20, AutoNCP(16, 2))
        >>> output, h_n = rnn(torch.randn(4, 10, 20))  # (B, T, F)
        >>> output.shape, h_n.shape
        (torch.Size([4, 10, 2]), torch.Size([4, 16]))

    See ``LiquidSequence.forward`` for the call arguments (``hx``, ``timespans``, ``lengths``,
    ``mask``) and shapes.
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        input_mapping: str | None = "affine",
        output_mapping: str | None = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        solver: str | Solver = "fused",
    ):
        super().__init__(input_size, return_sequences, batch_first, mixed_memory)
        if not implicit_param_constraints:
            warnings.warn(
                "LTC(implicit_param_constraints=False) has no effect: torchlnn keeps "
                "conductances and capacitances positive by construction. Drop the argument.",
                UserWarning,
                stacklevel=2,
            )
        self.wiring = resolve_wiring(units, input_size, "LTC")
        self.rnn_cell = LTCCell(
            self.wiring,
            in_features=input_size,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            solver=solver,
        )
        self._add_memory()

    @property
    def sensory_size(self) -> int:
        return self.wiring.input_dim

    @property
    def synapse_count(self) -> int:
        return self.wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int:
        return self.wiring.sensory_synapse_count

    def get_config(self) -> dict[str, Any]:
        cell = self.rnn_cell
        if type(cell.solver) is not SOLVERS.get(cell.solver.name):
            raise ValueError(
                f"LTC.get_config: the custom solver {cell.solver!r} cannot be stored in a config. "
                f"Use one of the named solvers {sorted(SOLVERS)}, or save the state dict only."
            )
        return {
            "input_size": self.input_size,
            "units": self.wiring.get_config(),
            "return_sequences": self.return_sequences,
            "batch_first": self.batch_first,
            "mixed_memory": self.mixed_memory,
            "input_mapping": cell.input_mapping,
            "output_mapping": cell.output_mapping,
            "ode_unfolds": cell.ode_unfolds,
            "epsilon": cell.epsilon,
            "solver": cell.solver.name,
        }
