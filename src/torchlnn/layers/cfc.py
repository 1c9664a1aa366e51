"""The CfC sequence layer."""

from __future__ import annotations

from typing import Any

from torch import nn

from torchlnn.cells import CfCCell, WiredCfCCell
from torchlnn.cells._common import resolve_wiring
from torchlnn.wirings import Wiring

from ._sequence import LiquidSequence


class CfC(LiquidSequence):
    """A closed-form continuous-time (CfC) network over a sequence.

    With an int ``units`` the cell is a dense ``torchlnn.CfCCell`` with a backbone; with a
    ``Wiring`` it is a ``torchlnn.cells.WiredCfCCell`` that follows the wiring layer by layer
    (equations in those classes' docstrings). Same arguments and results as ncps 1.0.1's
    ``CfC``, plus per-sample ``timespans`` and variable-length batches.

    Args:
        input_size: F, the number of input features.
        units: the number of neurons N, or a ``torchlnn.wirings.Wiring``.
        proj_size: if given, a linear map of the output to ``proj_size`` features.
        return_sequences: return the output of every step (True) or of the final state only.
        batch_first: input is (B, T, F) when True, (T, B, F) when False.
        mixed_memory: run an LSTM memory cell before each step; the state becomes ``(h, c)``.
        mode: "default", "no_gate" or "pure" (see ``CfCCell``).
        activation: backbone activation, "lecun_tanh", "tanh", "relu", "gelu" or "silu".
        backbone_units: backbone width (default 128). Dense ``units`` only.
        backbone_layers: backbone depth (default 1). Dense ``units`` only.
        backbone_dropout: backbone dropout (default 0.0). Dense ``units`` only.
        connectivity: for a wiring, "wiring" (default) or "ncps" (ncps 1.0.1's connectivity,
            see ``WiredCfCCell``; used by ``torchlnn.interop.ncps.from_ncps``).

    The output is the whole state for an int ``units`` and the motor neurons for a wiring,
    then projected if ``proj_size`` is set.

    Example::

        >>> import torch, torchlnn
        >>> rnn = torchlnn.CfC(20, 32, proj_size=2)
        >>> output, h_n = rnn(torch.randn(4, 10, 20), timespans=torch.rand(4, 10))
        >>> output.shape, h_n.shape
        (torch.Size([4, 10, 2]), torch.Size([4, 32]))
    """

    def __init__(
        self,
        input_size: int,
        units: int | Wiring,
        proj_size: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        connectivity: str = "wiring",
    ):
        super().__init__(input_size, return_sequences, batch_first, mixed_memory)
        self.mode = mode
        self.activation = activation
        if isinstance(units, Wiring):
            backbone = {
                "backbone_units": backbone_units,
                "backbone_layers": backbone_layers,
                "backbone_dropout": backbone_dropout,
            }
            given = [name for name, value in backbone.items() if value is not None]
            if given:
                raise ValueError(
                    f"CfC: {', '.join(given)} cannot be used with a wiring: a wired CfC has no "
                    f"backbone, because a dense backbone would connect every input to every "
                    f"neuron. Pass an int as units for a dense CfC with a backbone."
                )
            self.wiring = resolve_wiring(units, input_size, "CfC")
            self.rnn_cell = WiredCfCCell(input_size, self.wiring, mode, connectivity)
        else:
            if connectivity != "wiring":
                raise ValueError("CfC: connectivity applies only when units is a Wiring.")
            if isinstance(units, bool) or not isinstance(units, int):
                raise TypeError(
                    f"CfC: units must be an int (number of neurons) or a "
                    f"torchlnn.wirings.Wiring, got {units!r} ({type(units).__name__})."
                )
            self.wiring = None
            self.rnn_cell = CfCCell(
                input_size,
                units,
                mode,
                activation,
                128 if backbone_units is None else backbone_units,
                1 if backbone_layers is None else backbone_layers,
                0.0 if backbone_dropout is None else backbone_dropout,
            )
        if proj_size is not None:
            if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 1:
                raise ValueError(f"CfC: proj_size must be None or an int >= 1, got {proj_size!r}.")
            self.proj = nn.Linear(self.rnn_cell.motor_size, proj_size)
        self.proj_size = proj_size
        self._add_memory()

    @property
    def sensory_size(self) -> int:
        return self.input_size

    @property
    def synapse_count(self) -> int | None:
        """Synapses between neurons of the wiring; None for a dense CfC."""
        return None if self.wiring is None else self.wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int | None:
        """Synapses from input features to neurons; None for a dense CfC."""
        return None if self.wiring is None else self.wiring.sensory_synapse_count

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "input_size": self.input_size,
            "proj_size": self.proj_size,
            "return_sequences": self.return_sequences,
            "batch_first": self.batch_first,
            "mixed_memory": self.mixed_memory,
            "mode": self.mode,
            "activation": self.activation,
        }
        if self.wiring is not None:
            config["units"] = self.wiring.get_config()
            config["connectivity"] = self.rnn_cell.connectivity
        else:
            cell = self.rnn_cell
            config["units"] = cell.hidden_size
            config["backbone_units"] = cell.backbone_units
            config["backbone_layers"] = cell.backbone_layers
            config["backbone_dropout"] = cell.backbone_dropout
        return config
