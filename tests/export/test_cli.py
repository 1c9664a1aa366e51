"""The ``torchlnn export`` command on a layer saved with torchlnn.save."""

from __future__ import annotations

import argparse
import re
import shutil

import numpy as np
import pytest

import torchlnn
from torchlnn.cli import export as export_command

from .helpers import build, reference, sequence_inputs


def run_cli(*argv: str) -> int:
    # The sub-command's own parser, so that this test does not depend on the other commands.
    parser = argparse.ArgumentParser(prog="torchlnn")
    export_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def saved_model(tmp_path):
    model = build("cfc-wired-no_gate-mixed")
    path = tmp_path / "policy.pt"
    torchlnn.save(model, path)
    return model, path


def test_cli_export_onnx_sequence(saved_model, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    model, path = saved_model
    output = tmp_path / "policy.onnx"
    assert run_cli("export", "onnx", str(path), "-o", str(output)) == 0
    assert f"wrote {output}" in capsys.readouterr().out

    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    x, state, timespans = sequence_inputs(model, batch=2, steps=12)
    expected, _ = reference(model, x, state, timespans)
    feeds = {"x": x.numpy(), "state": state.numpy(), "timespans": timespans.numpy()}
    np.testing.assert_allclose(session.run(None, feeds)[0], expected.numpy(), atol=1e-5, rtol=0)


def test_cli_export_torchscript_step(saved_model, tmp_path):
    model, path = saved_model
    output = tmp_path / "step.pt"
    assert run_cli("export", "torchscript", str(path), "-o", str(output), "--form", "step") == 0
    assert output.stat().st_size > 0


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH")
def test_cli_export_c_with_runner(saved_model, tmp_path, capsys):
    _, path = saved_model
    folder = tmp_path / "c"
    folder.mkdir()
    assert run_cli("export", "c", str(path), "-o", str(folder), "--name", "policy", "--runner") == 0
    printed = capsys.readouterr().out
    assert "18 floats" in printed  # 9 neurons, h and c
    assert sorted(p.name for p in folder.iterdir()) == ["policy.c", "policy.h", "policy_runner.c"]


def test_cli_unwritable_output_is_clear_error(saved_model, tmp_path, capsys):
    _, path = saved_model
    code = run_cli("export", "onnx", str(path), "-o", str(tmp_path / "missing" / "p.onnx"))
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("torchlnn export: error: to_onnx: cannot write")
    assert "Traceback" not in error


def test_cli_missing_model_is_clear_error(tmp_path, capsys):
    code = run_cli("export", "c", str(tmp_path / "none.pt"), "-o", str(tmp_path))
    assert code == 2
    assert "none.pt" in capsys.readouterr().err


def test_cli_unsupported_solver_is_clear_error(tmp_path, capsys):
    path = tmp_path / "adaptive.pt"
    torchlnn.save(torchlnn.LTC(3, 4, solver="adaptive"), path)
    assert run_cli("export", "c", str(path), "-o", str(tmp_path)) == 2
    assert re.search(r"solver 'adaptive' .* has no C version", capsys.readouterr().err)


def test_cli_module_is_registered():
    from torchlnn.cli import COMMAND_MODULES

    assert "torchlnn.cli.export" in COMMAND_MODULES
