"""State dicts, configs and files: wirings cannot be overwritten, saved layers reload exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import torchlnn
from torchlnn.wirings import NCP, AutoNCP, FullyConnected, Random

from .test_wirings import TwoLayerCircuit


def test_loading_checkpoint_of_another_wiring_raises_clear_error():
    dense = torchlnn.LTC(4, FullyConnected(12, output_dim=2))
    sparse = torchlnn.LTC(4, AutoNCP(12, 2, seed=3))
    with pytest.raises(RuntimeError, match="connectivity buffer 'rnn_cell.sparsity_mask'"):
        sparse.load_state_dict(dense.state_dict())
    assert (sparse.rnn_cell.sparsity_mask.numpy() == (sparse.wiring.adjacency_matrix != 0)).all()
    x = torch.randn(2, 5, 4)
    assert not torch.allclose(dense(x)[0], sparse(x)[0])

    # The effective connectivity is still the AutoNCP's: one unfold's Jacobian of the new
    # state with respect to the old one is zero wherever the wiring has no synapse.
    cell = sparse.rnn_cell.double()
    cell.ode_unfolds = 1
    inputs = torch.randn(4, dtype=torch.float64)
    state = torch.randn(12, dtype=torch.float64)
    d_state = torch.autograd.functional.jacobian(lambda v: cell(inputs, v)[1], state)
    expected = (sparse.wiring.adjacency_matrix != 0).T | np.eye(12, dtype=bool)
    assert ((d_state.abs() > 1e-12).numpy() == expected).all()


def test_loading_wired_cfc_checkpoint_of_another_wiring_raises():
    first = torchlnn.CfC(4, AutoNCP(12, 2, seed=3))
    second = torchlnn.CfC(4, AutoNCP(12, 2, seed=4))
    with pytest.raises(RuntimeError, match="another wiring"):
        second.load_state_dict(first.state_dict())


@pytest.mark.parametrize("layer", [torchlnn.LTC, torchlnn.CfC])
def test_rejected_wiring_leaves_every_tensor(layer):
    first = layer(4, AutoNCP(12, 2, seed=3))
    second = layer(4, AutoNCP(12, 2, seed=4))
    before = {key: value.clone() for key, value in second.state_dict().items()}

    with pytest.raises(RuntimeError, match="nothing was loaded"):
        second.load_state_dict(first.state_dict())

    after = second.state_dict()
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert changed == []


def test_rejected_cell_wiring_leaves_every_tensor():
    first = torchlnn.cells.WiredCfCCell(4, AutoNCP(12, 2, seed=3))
    second = torchlnn.cells.WiredCfCCell(4, AutoNCP(12, 2, seed=4))
    before = {key: value.clone() for key, value in second.state_dict().items()}

    with pytest.raises(RuntimeError, match="another wiring"):
        second.load_state_dict(first.state_dict())

    after = second.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_wired_layer_inside_sequential_keeps_its_tensors():
    first = torch.nn.Sequential(torch.nn.Linear(4, 4), torchlnn.LTC(4, AutoNCP(12, 2, seed=3)))
    second = torch.nn.Sequential(torch.nn.Linear(4, 4), torchlnn.LTC(4, AutoNCP(12, 2, seed=4)))
    before = {key: value.clone() for key, value in second[1].state_dict().items()}

    with pytest.raises(RuntimeError, match="another wiring"):
        second.load_state_dict(first.state_dict())

    after = second[1].state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_ltc_weights_do_not_load_into_cfc():
    ltc = torchlnn.LTC(4, AutoNCP(12, 2))
    cfc = torchlnn.CfC(4, AutoNCP(12, 2))
    with pytest.raises(RuntimeError) as error:
        cfc.load_state_dict(ltc.state_dict(), strict=True)
    message = str(error.value)
    assert "Missing key(s)" in message and "Unexpected key(s)" in message


def test_same_wiring_checkpoint_loads_and_reproduces_outputs():
    first = torchlnn.LTC(4, AutoNCP(12, 2, seed=3))
    second = torchlnn.LTC(4, AutoNCP(12, 2, seed=3))
    second.load_state_dict(first.state_dict())
    x = torch.randn(2, 5, 4)
    assert torch.equal(first(x)[0], second(x)[0])


def saved_layers():
    return {
        "ltc-fully-connected": lambda: torchlnn.LTC(3, FullyConnected(6, output_dim=2)),
        "ltc-random": lambda: torchlnn.LTC(3, Random(6, 2, sparsity_level=0.4)),
        "ltc-ncp-mixed": lambda: torchlnn.LTC(3, NCP(4, 3, 2, 2, 2, 3, 2), mixed_memory=True),
        "ltc-autoncp-rk4": lambda: torchlnn.LTC(3, AutoNCP(10, 2), solver="rk4"),
        "ltc-user-wiring": lambda: torchlnn.LTC(3, TwoLayerCircuit()),
        "cfc-dense": lambda: torchlnn.CfC(3, 6, proj_size=2, mode="no_gate"),
        "cfc-autoncp": lambda: torchlnn.CfC(3, AutoNCP(10, 2), mode="pure"),
        "cfc-random": lambda: torchlnn.CfC(3, Random(6, 2, sparsity_level=0.4)),
        "cfc-user-wiring": lambda: torchlnn.CfC(3, TwoLayerCircuit(), batch_first=False),
    }


@pytest.mark.parametrize("name", sorted(saved_layers()))
def test_save_and_load_in_fresh_process_is_bit_identical(name, tmp_path):
    model = saved_layers()[name]()
    x = torch.randn(4, 5, 3)
    if not model.batch_first:
        x = x.transpose(0, 1)
    torch.save(x, tmp_path / "input.pt")
    expected, _ = model(x)
    torchlnn.save(model, tmp_path / "model.pt")

    script = textwrap.dedent(
        f"""
        import torch, torchlnn
        model = torchlnn.load({str(tmp_path / "model.pt")!r})
        output, _ = model(torch.load({str(tmp_path / "input.pt")!r}))
        torch.save(output, {str(tmp_path / "output.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    reloaded = torch.load(tmp_path / "output.pt")
    assert torch.equal(reloaded, expected)


def test_save_rejects_other_modules_and_load_rejects_plain_files(tmp_path):
    with pytest.raises(TypeError, match="LTC or torchlnn.CfC"):
        torchlnn.save(torch.nn.Linear(2, 2), tmp_path / "linear.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a file written by torchlnn.save"):
        torchlnn.load(tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        torchlnn.save(torchlnn.CfC(2, 3), tmp_path / "missing-folder" / "model.pt")


def test_layer_config_rebuilds_same_structure():
    model = torchlnn.CfC(3, AutoNCP(10, 2), mode="pure", proj_size=4)
    rebuilt = torchlnn.CfC.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_json_record_written_whole(tmp_path):
    from torchlnn._io import write_json

    path = tmp_path / "new" / "folder" / "record.json"
    write_json(path, {"run": tmp_path, "loss": 0.5})
    write_json(path, {"run": tmp_path, "loss": 0.25})  # replaces the first record
    text = path.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == {"run": str(tmp_path), "loss": 0.25}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temporary left
