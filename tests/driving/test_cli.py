"""The ``torchlnn driving`` command line."""

from __future__ import annotations

import json
import struct

import pytest

from torchlnn.cli import main


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def test_collect_command(tmp_path, capsys):
    status = main(["driving", "collect", "--episodes", "2", "--steps", "20", "--out",
                   str(tmp_path), "--quiet", "--set", "image_height=24", "--set",
                   "image_width=64", "--set", "speed=12"])

    assert status == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["episodes"]) == 2
    assert manifest["env_config"]["vehicle"]["speed"] == 12
    assert "2 episodes, 40 frames" in capsys.readouterr().out


def test_evaluate_command(tmp_path, capsys):
    status = main(["driving", "evaluate", "--policy", "expert", "--seeds", "1", "2",
                   "--distance", "60", "--perturb", "brightness:0.5", "--out", str(tmp_path),
                   "--quiet"])

    assert status == 0
    record = json.loads((tmp_path / "expert.json").read_text())
    assert record["seeds"] == [1, 2]
    assert record["perturbations"] == ["brightness:0.5"]
    assert record["summary"]["departures"] == 0
    assert (tmp_path / "expert.png").is_file()
    assert "expert on sim: 0 departures" in capsys.readouterr().out


def test_evaluate_loads_policy_factory(tmp_path):
    status = main(["driving", "evaluate", "--policy", "torchlnn.driving.policy:ConstantPolicy",
                   "--seeds", "1", "--distance", "20", "--out", str(tmp_path), "--quiet",
                   "--no-plot"])

    assert status == 0
    assert (tmp_path / "torchlnn-driving-policy-ConstantPolicy.json").is_file()


def test_render_command(tmp_path):
    status = main(["driving", "render", "--frames", "2", "--every", "5", "--scale", "2",
                   "--perturb", "occlusion:0.5", "--out", str(tmp_path)])

    assert status == 0
    assert _png_size(tmp_path / "frame_000.png") == (156, 400)
    assert _png_size(tmp_path / "frames.png") == (312, 400)


def test_invalid_arguments_are_reported():
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["driving", "collect", "--episodes", "1", "--out", "unused", "--set", "speed"])
    with pytest.raises(SystemExit, match="MODULE:FACTORY"):
        main(["driving", "evaluate", "--policy", "nonsense"])


def test_interrupted_command_exits_130_with_message(monkeypatch, capsys):
    import torchlnn.driving.lane_keeping as lane_keeping

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lane_keeping, "run_lane_keeping", interrupted)
    status = main(["lane-keeping", "--no-progress"])

    assert status == 130
    assert "interrupted (Ctrl-C)" in capsys.readouterr().err
