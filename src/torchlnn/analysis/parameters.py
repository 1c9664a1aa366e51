"""Parameter counts that leave out the weights a wiring switches off."""

from __future__ import annotations

from torch import nn

from torchlnn.cells import LTCCell
from torchlnn.cells.wired_cfc import _WiredLayer


def count_parameters(module: nn.Module, effective: bool = True) -> int:
    """Return the number of trainable parameter values of ``module``.

    With ``effective=True``, entries that a connectivity mask multiplies by zero are left out:
    an LTC stores w, sigma, mu and E for every pair of neurons (N x N) and every input-neuron
    pair (I x N), but only those of the wiring's synapses affect the output, and a wired CfC
    stores dense head matrices of which only the masked-in entries count. With
    ``effective=False`` every trainable value counts, as ``sum(p.numel())`` would.
    """
    total = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if not effective:
        return total
    for submodule in module.modules():
        if isinstance(submodule, LTCCell):
            absent = int((submodule.sparsity_mask == 0).sum())
            absent_sensory = int((submodule.sensory_sparsity_mask == 0).sum())
            per_synapse = [submodule.w_raw, submodule.sigma, submodule.mu, submodule.erev]
            per_sensory = [
                submodule.sensory_w_raw,
                submodule.sensory_sigma,
                submodule.sensory_mu,
                submodule.sensory_erev,
            ]
            total -= absent * sum(p.requires_grad for p in per_synapse)
            total -= absent_sensory * sum(p.requires_grad for p in per_sensory)
        elif isinstance(submodule, _WiredLayer) and submodule.weight.requires_grad:
            total -= int((submodule.mask == 0).sum())
    return total
