"""Builders shared by the core tests: one registry of every cell and layer configuration."""

from __future__ import annotations

import torch

import torchlnn
from torchlnn.cells import CfCCell, LTCCell, WiredCfCCell
from torchlnn.cells._common import inverse_positive
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random

SOLVERS = ("fused", "euler", "rk4", "adaptive")
MODES = ("default", "no_gate", "pure")


def small_ncp(seed: int = 2) -> NCP:
    """An NCP with 4 inter, 3 command and 2 motor neurons."""
    return NCP(4, 3, 2, 2, 2, 3, 2, seed=seed)


def wiring_factories():
    """Every built-in wiring class, small enough for float64 checks."""
    return {
        "fully_connected": lambda: FullyConnected(6, output_dim=2),
        "random": lambda: Random(7, output_dim=3, sparsity_level=0.5, seed=4),
        "ncp": small_ncp,
        "autoncp": lambda: AutoNCP(10, 2, sparsity_level=0.5, seed=5),
    }


def cell_factories(input_size: int = 3):
    """Every cell configuration: LTC per solver, dense and wired CfC per mode."""
    factories = {}
    for solver in SOLVERS:
        factories[f"ltc-{solver}"] = lambda s=solver: LTCCell(
            small_ncp(), in_features=input_size, ode_unfolds=6, solver=s
        )
    for mode in MODES:
        factories[f"cfc-{mode}"] = lambda m=mode: CfCCell(
            input_size, 5, mode=m, backbone_units=6, backbone_layers=1
        )
        factories[f"cfc-{mode}-nobackbone"] = lambda m=mode: CfCCell(
            input_size, 5, mode=m, backbone_layers=0
        )
        factories[f"wiredcfc-{mode}"] = lambda m=mode: WiredCfCCell(input_size, small_ncp(), mode=m)
        factories[f"wiredcfc-{mode}-ncps"] = lambda m=mode: WiredCfCCell(
            input_size, small_ncp(), mode=m, connectivity="ncps"
        )
    return factories


def layer_factories(input_size: int = 3):
    """Sequence layers in every family, with and without mixed memory."""
    return {
        "ltc": lambda **kw: torchlnn.LTC(input_size, 6, ode_unfolds=3, **kw),
        "ltc-ncp": lambda **kw: torchlnn.LTC(input_size, small_ncp(), ode_unfolds=3, **kw),
        "ltc-mixed": lambda **kw: torchlnn.LTC(input_size, 6, mixed_memory=True, **kw),
        "cfc": lambda **kw: torchlnn.CfC(input_size, 6, backbone_units=8, **kw),
        "cfc-pure": lambda **kw: torchlnn.CfC(input_size, 6, mode="pure", **kw),
        "cfc-ncp": lambda **kw: torchlnn.CfC(input_size, small_ncp(), **kw),
        "cfc-ncp-mixed": lambda **kw: torchlnn.CfC(
            input_size, small_ncp(), mixed_memory=True, **kw
        ),
        "cfc-proj": lambda **kw: torchlnn.CfC(input_size, 6, proj_size=2, **kw),
    }


def set_ltc_values(cell: LTCCell, **values: float) -> None:
    """Set an LTC cell's effective (post-softplus) parameters to constants."""
    positive = {"gleak", "cm", "w", "sensory_w"}
    with torch.no_grad():
        for name, value in values.items():
            if name in positive:
                raw = getattr(cell, f"{name}_raw")
                raw.fill_(float(inverse_positive(torch.tensor(float(value), dtype=torch.float64))))
            else:
                getattr(cell, name).fill_(value)
