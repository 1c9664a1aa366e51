"""Every fast path against the reference loop: same outputs and gradients.

The reference is the plain loop over ``prepare_inputs`` / ``advance`` / ``readout``
(``fast_path = False``). Each case runs a layer both ways in float64 and compares the output,
the final state and the gradients of the input, the initial state and every parameter, so a
wrong term in a hand-written backward fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import torchlnn
from torchlnn.cells import CfCCell, LTCCell, WiredCfCCell
from torchlnn.cells._fast import FAST_PATHS_SUPPORTED
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring

pytestmark = pytest.mark.skipif(
    not FAST_PATHS_SUPPORTED, reason="this PyTorch runs only the reference path"
)

INPUTS = 4


def small_ncp() -> NCP:
    return NCP(4, 3, 2, 2, 2, 3, 2, seed=2)


def interleaved_layers() -> Wiring:
    # Two layers whose neurons alternate (0, 2, 4 and 1, 3, 5): the wired CfC's fast path then
    # keeps its state in layer order and maps it back to neuron ids.
    rng = np.random.default_rng(3)
    adjacency = rng.choice([-1, 0, 1], size=(6, 6))
    sensory = rng.choice([-1, 0, 1], size=(INPUTS, 6))
    return Wiring.from_matrices(adjacency, sensory, output_dim=2, layers=[[1, 3, 5], [0, 2, 4]])


def no_sensory_synapses() -> Wiring:
    # No input reaches any neuron: the layers must still run on the recurrent synapses alone.
    adjacency = np.array([[0, 1, 0], [0, 0, -1], [1, 0, 0]])
    return Wiring.from_matrices(adjacency, np.zeros((INPUTS, 3), dtype=int), output_dim=1)


WIRINGS = {
    "fully_connected": lambda: FullyConnected(6, output_dim=2),
    "ncp": small_ncp,
    "autoncp": lambda: AutoNCP(12, 3, sparsity_level=0.6, seed=5),
    "random": lambda: Random(7, output_dim=3, sparsity_level=0.5, seed=4),
    "no_sensory_synapses": no_sensory_synapses,
}


def ltc_layers():
    layers = {}
    for wiring_name, wiring in WIRINGS.items():
        for solver in ("fused", "euler", "rk4"):
            # Explicit solvers need short sub-steps to stay stable (they warn otherwise).
            unfolds = {"fused": 3, "euler": 8, "rk4": 5}[solver]
            layers[f"ltc-{wiring_name}-{solver}"] = lambda w=wiring, s=solver, u=unfolds, **kw: (
                torchlnn.LTC(INPUTS, w(), ode_unfolds=u, solver=s, **kw)
            )
    layers["ltc-linear-identity"] = lambda **kw: torchlnn.LTC(
        INPUTS, small_ncp(), input_mapping="linear", output_mapping=None, **kw
    )
    layers["ltc-identity-linear"] = lambda **kw: torchlnn.LTC(
        INPUTS, 5, input_mapping="identity", output_mapping="linear", **kw
    )
    return layers


def cfc_layers():
    layers = {}
    for mode in ("default", "no_gate", "pure"):
        for activation, backbone_layers in (("lecun_tanh", 1), ("tanh", 2), ("relu", 0)):
            layers[f"cfc-{mode}-{activation}-{backbone_layers}"] = (
                lambda m=mode, a=activation, b=backbone_layers, **kw: torchlnn.CfC(
                    INPUTS, 5, mode=m, activation=a, backbone_units=7, backbone_layers=b, **kw
                )
            )
        for wiring_name, wiring in WIRINGS.items():
            layers[f"wiredcfc-{mode}-{wiring_name}"] = lambda m=mode, w=wiring, **kw: torchlnn.CfC(
                INPUTS, w(), mode=m, **kw
            )
        layers[f"wiredcfc-{mode}-ncps-connectivity"] = lambda m=mode, **kw: torchlnn.CfC(
            INPUTS, small_ncp(), mode=m, connectivity="ncps", **kw
        )
    for activation in ("gelu", "silu"):
        layers[f"cfc-{activation}"] = lambda a=activation, **kw: torchlnn.CfC(
            INPUTS, 5, activation=a, backbone_units=6, **kw
        )
    layers["cfc-proj"] = lambda **kw: torchlnn.CfC(INPUTS, 5, proj_size=2, **kw)
    return layers


LAYERS = {**ltc_layers(), **cfc_layers()}

# (timespans, lengths, return_sequences): a number, per-sample times, a padded batch.
OPTIONS = {
    "default": (None, None, True),
    "float-last": (0.6, None, False),
    "per-sample-times": ("tensor", None, True),
    "padded-last": ("tensor", [5, 2, 4], False),
}


def set_fast(layer: torch.nn.Module, fast: bool) -> None:
    layer.fast_path = fast
    layer.rnn_cell.fast_path = fast


def run(layer, x, h0, timespans, lengths, fast: bool):
    """Return (output, h_n, gradients of x, h0 and every parameter)."""
    set_fast(layer, fast)
    layer.zero_grad()
    x = x.detach().requires_grad_()
    h0 = h0.detach().requires_grad_()
    output, h_n = layer(x, h0, timespans=timespans, lengths=lengths)
    loss = (output * torch.linspace(-1, 1, output.shape[-1], dtype=output.dtype)).sum()
    loss = loss + h_n.pow(2).sum()
    loss.backward()
    grads = [x.grad, h0.grad] + [p.grad for p in layer.parameters()]
    return output.detach(), h_n.detach(), grads


def assert_same_run(layer, fast, reference):
    """Check that two results of ``run`` agree in float64: outputs, final state, gradients."""
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast[1], reference[1], rtol=1e-10, atol=1e-12)
    names = ["x", "h0"] + [n for n, _ in layer.named_parameters()]
    for grad_name, got, expected in zip(names, fast[2], reference[2]):
        # A value that the output does not depend on may get a zero gradient or none.
        if expected is None or torch.count_nonzero(expected) == 0:
            assert got is None or torch.count_nonzero(got) == 0, grad_name
            continue
        assert got is not None, grad_name
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11, msg=grad_name)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fast_path_matches_reference(name, option):
    torch.manual_seed(0)
    timespans, lengths, return_sequences = OPTIONS[option]
    layer = LAYERS[name](return_sequences=return_sequences).double()
    x = torch.randn(3, 5, INPUTS, dtype=torch.float64)
    h0 = 0.5 * torch.randn(3, layer.state_size, dtype=torch.float64)
    if timespans == "tensor":
        timespans = 0.2 + 1.6 * torch.rand(3, 5, dtype=torch.float64)

    fast = run(layer, x, h0, timespans, lengths, fast=True)
    reference = run(layer, x, h0, timespans, lengths, fast=False)

    assert_same_run(layer, fast, reference)


@pytest.mark.parametrize("name", ["ltc-ncp-fused", "ltc-autoncp-euler", "ltc-random-rk4"])
def test_synapse_sums_in_column_blocks(name, monkeypatch):
    # Blocks of 4 columns, the last one shorter, in the forward and in the backward. They cover
    # the sensory synapses of all steps (6 x 5 columns) and, with Euler and RK4, the recurrent
    # synapses of each step (6 columns, one per sample). Both must match the reference.
    from torchlnn.cells import _ltc_fast

    calls = {"forward": [], "backward": []}
    original = _ltc_fast._blocks

    def recording_blocks(columns, count, budget):
        direction = "forward" if budget == _ltc_fast._FORWARD_BUDGET else "backward"
        calls[direction].append(original(columns, count, budget))
        return calls[direction][-1]

    monkeypatch.setattr(_ltc_fast, "_MIN_COLUMNS", 4)
    monkeypatch.setattr(_ltc_fast, "_FORWARD_BUDGET", 1)
    monkeypatch.setattr(_ltc_fast, "_BACKWARD_BUDGET", 2)
    monkeypatch.setattr(_ltc_fast, "_blocks", recording_blocks)
    torch.manual_seed(3)
    layer = LAYERS[name]().double()
    x = torch.randn(6, 5, INPUTS, dtype=torch.float64)
    h0 = 0.5 * torch.randn(6, layer.state_size, dtype=torch.float64)

    fast = run(layer, x, h0, None, None, fast=True)
    reference = run(layer, x, h0, None, None, fast=False)

    assert_same_run(layer, fast, reference)
    all_steps = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 24), (24, 28), (28, 30)]
    assert all_steps in calls["forward"]
    assert all_steps in calls["backward"]
    if "fused" not in name:
        assert [(0, 4), (4, 6)] in calls["forward"]
        assert [(0, 4), (4, 6)] in calls["backward"]


@pytest.mark.parametrize(
    "name", ["ltc-autoncp-fused", "cfc-default-lecun_tanh-1", "wiredcfc-default-ncp"]
)
def test_fast_path_float32_within_tolerance(name):
    torch.manual_seed(1)
    layer = LAYERS[name]()
    x = torch.randn(8, 40, INPUTS)
    h0 = 0.1 * torch.randn(8, layer.state_size)
    fast = run(layer, x, h0, None, None, fast=True)
    reference = run(layer, x, h0, None, None, fast=False)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-4, atol=2e-6)
    for got, expected in zip(fast[2], reference[2]):
        if expected is not None:
            torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["ltc-ncp-fused", "ltc-random-euler", "cfc-pure-tanh-2", "wiredcfc-no_gate-random"]
)
def test_fast_path_gradcheck_float64(name):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    set_fast(layer, True)
    x = torch.randn(2, 3, INPUTS, dtype=torch.float64, requires_grad=True)
    h0 = (0.3 * torch.randn(2, layer.state_size, dtype=torch.float64)).requires_grad_()
    timespans = 0.5 + torch.rand(2, 3, dtype=torch.float64)

    def function(x, h0):
        output, h_n = layer(x, h0, timespans=timespans, lengths=[3, 2])
        return output, h_n

    assert gradcheck(function, (x, h0), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["ltc-ncp-fused", "cfc-default-lecun_tanh-1", "wiredcfc-pure-ncp"])
def test_fast_path_layouts_and_no_grad(name):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    x = torch.randn(3, 6, INPUTS, dtype=torch.float64)
    for fast in (True, False):
        set_fast(layer, fast)
        with torch.no_grad():
            result = layer.forward_with_states(x)
            time_major = layer.forward_with_states(x.transpose(0, 1).contiguous(), hx=None)
            unbatched = layer.forward_with_states(x[1])
        if fast:
            expected = (result, time_major, unbatched)
            continue
        for got, wanted in zip(expected, (result, time_major, unbatched)):
            torch.testing.assert_close(got.output, wanted.output, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(got.states, wanted.states, rtol=1e-10, atol=1e-12)
    layer.batch_first = False
    set_fast(layer, True)
    with torch.no_grad():
        output, _ = layer(x.transpose(0, 1))
    set_fast(layer, False)
    with torch.no_grad():
        expected_output, _ = layer(x.transpose(0, 1))
    torch.testing.assert_close(output, expected_output, rtol=1e-10, atol=1e-12)


def cells():
    return {
        "ltc-ncp": lambda: LTCCell(small_ncp(), in_features=INPUTS),
        "ltc-autoncp-large": lambda: LTCCell(AutoNCP(96, 4, seed=1), in_features=INPUTS),
        "ltc-euler": lambda: LTCCell(small_ncp(), in_features=INPUTS, solver="euler"),
        "ltc-linear-identity": lambda: LTCCell(
            small_ncp(), in_features=INPUTS, input_mapping="linear", output_mapping=None
        ),
        "ltc-identity-linear": lambda: LTCCell(
            small_ncp(), in_features=INPUTS, input_mapping="identity", output_mapping="linear"
        ),
        "cfc": lambda: CfCCell(INPUTS, 5, backbone_units=6),
        "cfc-pure-gelu": lambda: CfCCell(INPUTS, 5, mode="pure", backbone_activation="gelu"),
        "wiredcfc": lambda: WiredCfCCell(INPUTS, small_ncp()),
        "wiredcfc-random": lambda: WiredCfCCell(INPUTS, Random(7, 3, 0.5, seed=4), "no_gate"),
        "wiredcfc-interleaved": lambda: WiredCfCCell(INPUTS, interleaved_layers()),
    }


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", sorted(cells()))
def test_cell_step_matches_reference(name, batch):
    torch.manual_seed(0)
    cell = cells()[name]().double()
    with torch.no_grad():  # move the LTC's input and output mappings away from the identity
        for parameter_name, parameter in cell.named_parameters():
            if parameter_name.startswith(("input_", "output_")):
                parameter.add_(0.3 * torch.randn_like(parameter))
    x = torch.randn(batch, INPUTS, dtype=torch.float64)
    h = 0.5 * torch.randn(batch, cell.state_size, dtype=torch.float64)
    for dt in (1.0, 0.3, 0.2 + torch.rand(batch, 1, dtype=torch.float64)):
        with torch.no_grad():
            cell.fast_path = True
            output, state = cell(x, h, dt)
            cell.fast_path = False
            expected_output, expected_state = cell(x, h, dt)
        torch.testing.assert_close(output, expected_output, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(state, expected_state, rtol=1e-10, atol=1e-12)


def test_cell_step_sees_parameter_updates():
    torch.manual_seed(0)
    for cell in (LTCCell(small_ncp(), in_features=INPUTS), WiredCfCCell(INPUTS, small_ncp())):
        x, h = torch.randn(1, INPUTS), torch.randn(1, cell.state_size)
        changes = [
            lambda c: torch.nn.init.normal_(next(c.parameters())),  # in place
            lambda c: c.load_state_dict(
                {**c.state_dict(), **{k: p + 0.1 for k, p in c.named_parameters()}}
            ),
            lambda c: setattr(next(c.parameters()), "data", next(c.parameters()).data * 1.5),
        ]
        for change in changes:
            with torch.no_grad():
                cell(x, h)  # fill the cache
                change(cell)
                cell.fast_path = True
                got = cell(x, h)[1]
                cell.fast_path = False
                expected = cell(x, h)[1]
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_layer_declines_where_no_fast_path_exists():
    torch.manual_seed(0)
    x = torch.randn(2, 4, INPUTS)
    h0 = torch.zeros(2, 6)
    dt = torch.ones(2, 4, 1, requires_grad=True)
    declined = {
        "mixed memory": (torchlnn.CfC(INPUTS, 6, mixed_memory=True), {}),
        "adaptive solver": (torchlnn.LTC(INPUTS, 6, solver="adaptive"), {}),
        "elapsed time with grad": (torchlnn.LTC(INPUTS, 6), {"dt": dt}),
    }
    for reason, (layer, extra) in declined.items():
        run_fast = layer._run_fast(x, h0, extra.get("dt", 1.0), None, True)
        assert run_fast is None, reason
    # Active dropout runs fast only where autograd records: without it no masks are drawn.
    dropout = torchlnn.CfC(INPUTS, 6, backbone_dropout=0.3)
    with torch.no_grad():
        assert dropout._run_fast(x, h0, 1.0, None, True) is None
    assert dropout._run_fast(x, h0, 1.0, None, True) is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torchlnn.LTC(INPUTS, 6)._run_fast(x, h0, 1.0, None, True) is None
    half = torchlnn.LTC(INPUTS, 6).to(torch.bfloat16)
    assert half._run_fast(x.bfloat16(), h0.bfloat16(), 1.0, None, True) is None
    assert half(x.bfloat16())[0].dtype == torch.bfloat16
    layer = torchlnn.LTC(INPUTS, 6)
    assert layer._run_fast(x, h0, 1.0, None, True) is not None


def test_constant_timespans_tensor_equals_number_bitwise():
    torch.manual_seed(0)
    for layer in (torchlnn.LTC(INPUTS, small_ncp()), torchlnn.CfC(INPUTS, small_ncp())):
        x = torch.randn(3, 5, INPUTS)
        as_number, _ = layer(x, timespans=0.7)
        as_tensor, _ = layer(x, timespans=torch.full((3, 5), 0.7))
        assert torch.equal(as_number, as_tensor)


def test_inference_mode_then_no_grad_agree():
    torch.manual_seed(0)
    for cell in (LTCCell(small_ncp(), in_features=INPUTS), WiredCfCCell(INPUTS, small_ncp())):
        x, h = torch.randn(1, INPUTS), torch.randn(1, cell.state_size)
        with torch.inference_mode():
            first = cell(x, h)[1]
        with torch.no_grad():
            second = cell(x, h)[1]  # buffers made in inference mode must not be reused here
        torch.testing.assert_close(first.clone(), second, rtol=0, atol=0)
    layer = torchlnn.LTC(INPUTS, small_ncp())
    x = torch.randn(2, 4, INPUTS)
    with torch.inference_mode():
        first = layer(x)[0]
    layer(x)[0].sum().backward()
    torch.testing.assert_close(first.clone(), layer(x)[0].detach(), rtol=0, atol=0)


class FixedDropout(torch.nn.Module):
    """Stands in for one ``nn.Dropout`` of the reference: call t multiplies by ``masks[t]``."""

    def __init__(self, masks: torch.Tensor):
        super().__init__()
        self.masks, self.calls = masks, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        mask = self.masks[self.calls]
        self.calls += 1
        return z * mask


DROPOUT_LAYERS = {
    "lecun_tanh-1": dict(activation="lecun_tanh", backbone_layers=1),
    "tanh-2": dict(activation="tanh", backbone_layers=2),
    "relu-2-pure": dict(activation="relu", backbone_layers=2, mode="pure"),
    "gelu-1-no_gate": dict(activation="gelu", backbone_layers=1, mode="no_gate"),
    "silu-1": dict(activation="silu", backbone_layers=1),
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("name", sorted(DROPOUT_LAYERS))
def test_dropout_fast_path_with_shared_masks(name, option, monkeypatch):
    from torchlnn.cells import _cfc_fast

    torch.manual_seed(0)
    timespans, lengths, return_sequences = OPTIONS[option]
    layer = torchlnn.CfC(
        INPUTS, 5, backbone_units=7, backbone_dropout=0.4, return_sequences=return_sequences,
        **DROPOUT_LAYERS[name],
    ).double()
    layer.train()
    x = torch.randn(3, 5, INPUTS, dtype=torch.float64)
    h0 = 0.5 * torch.randn(3, layer.state_size, dtype=torch.float64)
    if timespans == "tensor":
        timespans = 0.2 + 1.6 * torch.rand(3, 5, dtype=torch.float64)

    # The fast path's masks, drawn once: (T, B, width) per backbone layer.
    layers = layer.rnn_cell.backbone_layers
    masks = [(torch.rand(5, 3, 7, dtype=torch.float64) > 0.4) / 0.6 for _ in range(layers)]
    assert all(0 < int(m.eq(0).sum()) < m.numel() for m in masks)
    drawn = []

    def draw(cell, stages, steps, batch, like):
        drawn.append((steps, batch))
        values = iter(masks)
        return [None if stage.closed_form else next(values) for stage in stages]

    monkeypatch.setattr(_cfc_fast, "draw_dropout_masks", draw)
    fast = run(layer, x, h0, timespans, lengths, fast=True)
    assert drawn == [(5, 3)], "the fast path did not run"

    backbone = layer.rnn_cell.backbone
    dropouts = [i for i, m in enumerate(backbone) if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == layers
    for index, mask in zip(dropouts, masks):
        backbone[index] = FixedDropout(mask)
    reference = run(layer, x, h0, timespans, lengths, fast=False)
    assert all(backbone[i].calls == 5 for i in dropouts)

    assert_same_run(layer, fast, reference)


def test_dropout_masks_share_and_mean():
    from torchlnn.cells import _cfc_fast

    torch.manual_seed(0)
    cell = CfCCell(INPUTS, 5, backbone_units=50, backbone_layers=2, backbone_dropout=0.3)
    program = _cfc_fast.dense_program(cell, 1.0)
    masks = _cfc_fast.draw_dropout_masks(cell, program.stages, 200, 40, torch.zeros(1))
    assert [m is None for m in masks] == [False, False, True]
    for mask in masks[:2]:
        assert mask.shape == (200, 40, 50)
        assert torch.unique(mask).tolist() == [0.0, pytest.approx(1 / 0.7)]
        assert abs(mask.eq(0).double().mean().item() - 0.3) < 0.01
        assert abs(mask.double().mean().item() - 1.0) < 0.02
        # Every step and every sample gets its own mask.
        assert not torch.equal(mask[0], mask[1])
        assert not torch.equal(mask[:, 0], mask[:, 1])
    assert not torch.equal(masks[0], masks[1])
    cell.eval()
    assert _cfc_fast.draw_dropout_masks(cell, program.stages, 3, 2, torch.zeros(1)) is None


def count_mask_draws(monkeypatch) -> list[int]:
    """Count the fast path's mask draws (one per recorded run with active dropout)."""
    from torchlnn.cells import _cfc_fast

    draws = []
    original = _cfc_fast.draw_dropout_masks

    def counting(*args):
        masks = original(*args)
        draws.append(masks is not None)
        return masks

    monkeypatch.setattr(_cfc_fast, "draw_dropout_masks", counting)
    return draws


def test_dropout_training_and_eval_runs(monkeypatch):
    draws = count_mask_draws(monkeypatch)
    torch.manual_seed(0)
    layer = torchlnn.CfC(INPUTS, 5, backbone_dropout=0.5)
    x = torch.randn(2, 6, INPUTS)
    first, second = layer(x)[0], layer(x)[0]
    assert not torch.allclose(first, second)
    assert draws == [True, True]  # both training runs took the fast path with masks
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0], rtol=0, atol=0)
    assert draws == [True, True, False, False]


def test_dropout_follows_the_dropout_modules(monkeypatch):
    draws = count_mask_draws(monkeypatch)
    torch.manual_seed(0)
    layer = torchlnn.CfC(INPUTS, 5, backbone_layers=2, backbone_dropout=0.5)
    dropouts = [m for m in layer.rnn_cell.backbone if isinstance(m, torch.nn.Dropout)]
    x = torch.randn(2, 6, INPUTS)
    layer.eval()
    expected = layer(x)[0].detach()

    # Training mode with the dropout modules switched off, or set to p = 0: no dropout.
    layer.train()
    for switch_off in (lambda m: m.eval(), lambda m: setattr(m, "p", 0.0)):
        for module in dropouts:
            module.train()
            module.p = 0.5
            switch_off(module)
        torch.testing.assert_close(layer(x)[0].detach(), expected, rtol=1e-6, atol=1e-7)

    # Monte Carlo dropout: the layer in eval() with its dropout modules in training mode.
    layer.eval()
    for module in dropouts:
        module.train()
        module.p = 0.5
    recorded = [layer(x)[0].detach() for _ in range(2)]
    with torch.no_grad():  # the reference, which applies the modules itself
        unrecorded = [layer(x)[0] for _ in range(2)]
    for first, second in (recorded, unrecorded):
        assert not torch.allclose(first, second)
    assert draws[-2:] == [True, True]

    # Only the second layer drops: the first layer's mask is None.
    from torchlnn.cells import _cfc_fast

    dropouts[0].eval()
    program = _cfc_fast.dense_program(layer.rnn_cell, 1.0)
    masks = _cfc_fast.draw_dropout_masks(layer.rnn_cell, program.stages, 3, 2, x)
    assert [m is None for m in masks] == [True, False, True]
