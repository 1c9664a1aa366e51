"""``torchlnn plot wiring|activity|attention`` on saved models and data files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

import torchlnn  # noqa: E402
from torchlnn import analysis, cli  # noqa: E402

from .models import small_ncp, tiny_policy  # noqa: E402


@pytest.fixture
def run(monkeypatch):
    """Run ``torchlnn`` with only the plot command registered (other commands need extras)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["torchlnn.cli.plot"])
    return cli.main


def read_png(path):
    imageio = pytest.importorskip("imageio.v3")
    image = imageio.imread(path)
    assert (image[..., :3] < 245).any(axis=-1).mean() > 0.02
    return image


@pytest.fixture
def saved_ltc(tmp_path):
    layer = torchlnn.LTC(4, small_ncp())
    torchlnn.save(layer, tmp_path / "ltc.pt")
    return layer, tmp_path / "ltc.pt"


def test_plot_is_registered():
    assert "torchlnn.cli.plot" in cli.COMMAND_MODULES


def test_cli_wiring(run, saved_ltc, tmp_path, no_network):
    _, path = saved_ltc
    output = tmp_path / "wiring.png"
    assert run(["plot", "wiring", str(path), "-o", str(output)]) == 0
    read_png(output)


def test_cli_activity(run, saved_ltc, tmp_path, capsys):
    layer, path = saved_ltc
    inputs = np.random.default_rng(0).normal(size=(2, 12, 4)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "targets.npy", inputs[..., :1])
    out = tmp_path / "figures"
    status = run(["plot", "activity", str(path), "--inputs", str(tmp_path / "inputs.npy"),
                  "--targets", str(tmp_path / "targets.npy"), "-o", str(out)])
    assert status == 0
    for name in ("activity", "pca", "correlation", "time_constants", "lipschitz",
                 "sensitivity"):
        read_png(out / f"{name}.png")

    summary = json.loads((out / "summary.json").read_text())
    expected = analysis.activity_pca(analysis.record_activity(layer, torch.from_numpy(inputs)))
    np.testing.assert_allclose(summary["explained_variance_ratio"],
                               expected.explained_variance_ratio, rtol=1e-5)
    assert summary["neuron_types"] == layer.wiring.neuron_types()
    assert len(summary["lipschitz_input_bound"]) == 10
    assert "PC1 explains" in capsys.readouterr().out


def test_cli_activity_npz_with_timespans(run, tmp_path):
    torchlnn.save(torchlnn.CfC(4, small_ncp()), tmp_path / "cfc.pt")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", inputs=rng.normal(size=(8, 4)).astype(np.float32),
             timespans=rng.uniform(0.5, 1.5, size=8).astype(np.float32))
    out = tmp_path / "out"
    assert run(["plot", "activity", str(tmp_path / "cfc.pt"), "--inputs",
                str(tmp_path / "data.npz"), "-o", str(out)]) == 0
    assert not (out / "time_constants.png").exists()  # a CfC has no LTC time constants
    read_png(out / "lipschitz.png")


def test_cli_attention_factory_model(run, tmp_path, capsys):
    model = tiny_policy()
    torch.save(model.state_dict(), tmp_path / "policy_state.pt")
    frames = (np.random.default_rng(2).random((4, 24, 32, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "frames.npy", frames)  # channels last, 8-bit
    spec = "tests.analysis.models:tiny_policy"

    gif = tmp_path / "attention.gif"
    assert run(["plot", "attention", spec, "--weights", str(tmp_path / "policy_state.pt"),
                "--frames", str(tmp_path / "frames.npy"), "--extractor", "conv_head",
                "--method", "all", "--samples", "2", "--steps", "3", "--noise", "0.1",
                "-o", str(gif)]) == 0
    imageio = pytest.importorskip("imageio.v3")
    assert imageio.imread(gif, index=None).shape[0] == 4
    printed = capsys.readouterr().out
    assert "VisualBackProp: mean SSIM" in printed
    assert "SmoothGrad: mean SSIM" in printed

    png = tmp_path / "attention.png"
    assert run(["plot", "attention", spec, "--frames", str(tmp_path / "frames.npy"),
                "--extractor", "conv_head", "-o", str(png)]) == 0
    read_png(png)


def test_cli_rejects_pickled_module_without_trust(run, tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3)), tmp_path / "whole.pt")
    frames = np.random.default_rng(3).random((2, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "frames.npy", frames)
    arguments = ["plot", "attention", str(tmp_path / "whole.pt"), "--frames",
                 str(tmp_path / "frames.npy"), "--per-frame", "-o", str(tmp_path / "a.png")]
    with pytest.raises(ValueError, match="--trust-pickle"):
        run(arguments)
    assert run(arguments + ["--trust-pickle"]) == 0
    read_png(tmp_path / "a.png")


def test_cli_reports_missing_inputs(run, saved_ltc, tmp_path):
    _, path = saved_ltc
    with pytest.raises(FileNotFoundError, match="not found"):
        run(["plot", "activity", str(path), "--inputs", str(tmp_path / "none.npy"),
             "-o", str(tmp_path)])
    torch.save({"frames": torch.zeros(2, 3, 16, 16)}, tmp_path / "data.pt")
    with pytest.raises(ValueError, match="no array named 'inputs'"):
        run(["plot", "activity", str(path), "--inputs", str(tmp_path / "data.pt"),
             "-o", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        run(["plot", "wiring", "no-such-model", "-o", str(tmp_path / "w.png")])
