"""A tiny lane-keeping run, end to end: every stage runs and the report has every section."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("gymnasium")

from torchlnn.cli import main as cli_main  # noqa: E402
from torchlnn.driving.lane_keeping import (  # noqa: E402
    LaneKeepingConfig,
    check_run_dir,
    collect_stage,
    differing_settings,
    open_run,
    preset_config,
    run_lane_keeping,
)


def tiny_config(tmp_path, **overrides) -> LaneKeepingConfig:
    values = {
        "episodes": 4,
        "episode_steps": 40,
        "models": ("ncp-ltc", "cnn"),
        "window": 8,
        "stride": 8,
        "epochs": 1,
        "batch_size": 4,
        "eval_seeds": (1000,),
        "eval_distance": 30.0,
        "noise_variances": (0.1,),
        "attention_frames": 4,
        "runs_root": str(tmp_path / "runs"),
        "progress": False,
        **overrides,
    }
    return LaneKeepingConfig(**values)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return run_lane_keeping(tiny_config(tmp_path_factory.mktemp("tiny")))


@pytest.mark.slow
def test_tiny_run_writes_complete_report(tiny_run):
    folder = tiny_run
    report = (folder / "report.md").read_text()
    for section in (
        "## The answer",
        "## Results",
        "## Closed-loop driving",
        "## Figures",
        "## How this was measured",
    ):
        assert section in report
    for name in ("NCP, LTC (19 neurons)", "CNN (no memory)", "expert (privileged)"):
        assert name in report
    assert "departures/km, noise 0.1" in report
    assert "trainable parameters" in report
    html = (folder / "report.html").read_text()
    assert html.count("<img") >= 4
    # Paths are plotted with clean frames and at the strongest noise level.
    for condition in ("clean", "noise 0.1"):
        assert f"Driven path of the NCP, LTC (19 neurons) ({condition})" in report
        assert (folder / "evaluation" / f"ncp-ltc-{condition.replace(' ', '-')}.png").is_file()
    record = json.loads((folder / "lane_keeping.json").read_text())
    assert record["finished_stages"] == ["collect", "train", "evaluate", "analyse"]
    figures = {path.name for path in (folder / "figures").iterdir()}
    assert {"attention-ncp-ltc.png", "traces-ncp-ltc.png", "wiring-ncp-ltc.png"} <= figures
    assert record["stages"]["analyse"]["models"]["ncp-ltc"]["control_parameters"] > 0
    assert "live conv channels, last layer" in report
    live = record["stages"]["analyse"]["models"]["ncp-ltc"]["live_channels"]
    assert len(live) == 5  # one fraction per conv layer of the paper's head
    channels = record["stages"]["analyse"]["models"]["ncp-ltc"]["conv_channels"]
    assert channels == [24, 36, 48, 64, 8]
    assert f"| {round(live[-1] * 8)} of 8 |" in report
    clean = record["stages"]["evaluate"]["ncp-ltc | clean"]["summary"]
    kilometres = clean["distance_m"] / 1000
    assert f"moves its rate by {1 / kilometres:.1f} per km" in report
    assert "one run does not rank the models" in report
    conditions = record["conditions"]  # behind the wall times: threads and load per stage
    assert list(conditions) == ["collect", "train", "evaluate", "analyse"]
    assert all(entry["torch_threads"] >= 1 for entry in conditions.values())
    assert "Torch threads: " in report
    assert "when each stage ended, this run's own threads included: collect " in report


@pytest.mark.slow
def test_report_warns_of_blind_policy(tiny_run, tmp_path):
    from torchlnn.driving.report import write_report

    record = json.loads((tiny_run / "lane_keeping.json").read_text())
    record["stages"]["analyse"]["models"]["cnn"]["live_channels"] = [1.0, 0.5, 0.5, 0.2, 0.0]

    report = write_report(tmp_path, record).read_text()

    assert "Warning: in the CNN (no memory) policy, the last conv layer has no live" in report
    assert "Warning: in the NCP, LTC" not in report
    assert "| 0 of 8 |" in report


@pytest.mark.slow
def test_report_shows_share_for_older_record(tiny_run, tmp_path):
    from torchlnn.driving.report import write_report

    record = json.loads((tiny_run / "lane_keeping.json").read_text())
    for summary in record["stages"]["analyse"]["models"].values():
        del summary["conv_channels"]  # as written before channel counts were stored
    record["stages"]["analyse"]["models"]["cnn"]["live_channels"] = [1.0, 1.0, 1.0, 1.0, 0.375]
    del record["conditions"]  # runs recorded before threads and load were stored

    report = write_report(tmp_path, record).read_text()

    assert "| 38% |" in report
    assert "Torch threads" not in report
    assert "Wall time per stage: collect" in report
    assert " of 8 |" not in report


@pytest.mark.slow
def test_deploy_script_forms_match_pytorch(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    script = Path(__file__).resolve().parents[2] / "examples" / "deploy_lane_policy.py"
    policy = tiny_run / "models" / "ncp-ltc" / "policy.pt"
    done = subprocess.run(
        [sys.executable, str(script), str(policy), "--out", str(tmp_path), "--steps", "12"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    differences = [float(d) for d in re.findall(r"max difference ([0-9.e+-]+)", done.stdout)]
    assert len(differences) == 3 or (len(differences) == 2 and "not compiled" in done.stdout)
    assert max(differences) < 1e-5
    assert (tmp_path / "lane_policy.onnx").is_file()
    assert (tmp_path / "firmware" / "lane_policy.c").is_file()
    assert (tmp_path / "controller.pt").is_file()


@pytest.mark.slow
def test_rerun_resumes_finished_stages(tmp_path):
    config = tiny_config(tmp_path, models=("cnn",), conv_init="pytorch")
    first = run_lane_keeping(config)
    record = json.loads((first / "lane_keeping.json").read_text())
    saved = torch.load(first / "models" / "cnn" / "policy.pt", weights_only=False)
    assert saved["config"]["conv_init"] == "pytorch"  # the setting reached the policy
    (first / "report.md").unlink()  # an interrupted run has no report yet
    second = run_lane_keeping(config)
    assert second == first
    resumed = json.loads((second / "lane_keeping.json").read_text())
    assert resumed["timings"] == record["timings"]  # no stage ran again
    assert len(resumed["attempts"]) == 2


def test_interrupted_run_names_its_folder_and_resumes_there(tmp_path, monkeypatch, capsys):
    from torchlnn.driving import lane_keeping

    def interrupted(run, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(lane_keeping, "train_stage", interrupted)
    config = tiny_config(tmp_path, episodes=3, episode_steps=20, models=("cnn",))
    with pytest.raises(KeyboardInterrupt):
        run_lane_keeping(config)
    output = capsys.readouterr()
    folder = re.search(r"run folder: (\S+) \(new\)", output.out).group(1)
    assert f"interrupted. Finished work is kept in {folder}" in output.err

    with pytest.raises(KeyboardInterrupt):  # the second attempt starts after collect
        run_lane_keeping(config)
    assert f"run folder: {folder} (resuming; finished stages: collect)" in capsys.readouterr().out


def test_smaller_run_uses_its_episodes_of_larger_cache(tmp_path):
    larger = collect_stage(open_run(tiny_config(tmp_path, episodes=5, episode_steps=20)))
    smaller = collect_stage(open_run(tiny_config(tmp_path, episodes=3, episode_steps=20)))

    assert larger["data_dir"] == smaller["data_dir"]  # the cache is shared
    larger_indices = sorted(sum(larger["split"].values(), []))
    smaller_indices = sorted(sum(smaller["split"].values(), []))
    assert larger_indices == [0, 1, 2, 3, 4]
    assert smaller_indices == [0, 1, 2]
    assert smaller["frames"] < larger["frames"]


def test_presets_and_invalid_settings():
    assert preset_config("quick").models == ("ncp-ltc", "cnn", "lstm")
    assert "ncp-cfc" in preset_config("full").models
    with pytest.raises(ValueError, match="Unknown policy kinds"):
        LaneKeepingConfig(models=("gpt",))
    with pytest.raises(ValueError, match="at least 3"):
        LaneKeepingConfig(episodes=2)
    with pytest.raises(ValueError, match="preset"):
        preset_config("huge")
    with pytest.raises(ValueError, match="head_lr=0.0"):
        LaneKeepingConfig(head_lr=0.0)
    with pytest.raises(ValueError, match="lr=-0.1"):
        LaneKeepingConfig(lr=-0.1)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        LaneKeepingConfig(patience=0)
    with pytest.raises(ValueError, match="conv_init must be one of"):
        LaneKeepingConfig(conv_init="he")


@pytest.mark.slow
def test_redo_analyse_keeps_training(tmp_path):
    config = tiny_config(tmp_path, models=("cnn",))
    folder = run_lane_keeping(config)
    record = json.loads((folder / "lane_keeping.json").read_text())
    del record["stages"]["analyse"]["models"]["cnn"]["live_channels"]  # as an older run
    (folder / "lane_keeping.json").write_text(json.dumps(record))

    again = run_lane_keeping(config, run_dir=str(folder), redo="analyse")

    assert again == folder
    redone = json.loads((folder / "lane_keeping.json").read_text())
    assert redone["stages"]["train"] == record["stages"]["train"]
    assert redone["stages"]["evaluate"] == record["stages"]["evaluate"]
    assert len(redone["stages"]["analyse"]["models"]["cnn"]["live_channels"]) == 5
    assert redone["finished_stages"] == ["collect", "train", "evaluate", "analyse"]


def test_redo_rejects_folder_without_run(tmp_path):
    with pytest.raises(ValueError, match="lane_keeping.json was not found"):
        run_lane_keeping(tiny_config(tmp_path), run_dir=str(tmp_path / "missing"), redo="analyse")


def test_redo_rejects_training_stage(tmp_path):
    with pytest.raises(ValueError, match="redo must be one of"):
        run_lane_keeping(tiny_config(tmp_path), redo="train")


def test_recorded_run_keeps_fingerprint_with_pytorch_init():
    from torchlnn.driving.lane_keeping import config_fingerprint

    results = Path(__file__).resolve().parents[2] / "experiments" / "results" / "lane-keeping"
    record = json.loads((results / "ncp-ltc-30-seed-1" / "lane_keeping.json").read_text())
    assert "conv_init" not in record["config"]  # recorded before the setting existed

    before = LaneKeepingConfig(**record["config"], conv_init="pytorch")
    now = LaneKeepingConfig(**record["config"])

    assert config_fingerprint(before) == record["fingerprint"]
    assert config_fingerprint(now) != record["fingerprint"]


def test_run_dir_of_other_settings_is_rejected(tmp_path):
    folder = tmp_path / "run"
    open_run(tiny_config(tmp_path), run_dir=str(folder))

    with pytest.raises(ValueError, match="was made with other settings") as caught:
        open_run(tiny_config(tmp_path, epochs=7, seed=5), run_dir=str(folder))

    recorded = json.loads((folder / "lane_keeping.json").read_text())["config"]
    message = str(caught.value)
    assert f"--epochs is {recorded['epochs']} in the run and 7 now" in message
    assert f"--seed is {recorded['seed']} in the run and 5 now" in message
    assert "episodes" not in message  # only the settings that differ are named


def test_cli_reports_other_settings_without_traceback(tmp_path, capsys):
    folder = tmp_path / "run"
    open_run(preset_config("quick", runs_root=str(tmp_path)), run_dir=str(folder))

    status = cli_main(["lane-keeping", "--run-dir", str(folder), "--epochs", "3",
                       "--runs-root", str(tmp_path)])

    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("torchlnn lane-keeping: error: The run in")
    assert "--epochs is 8 in the run and 3 now" in error
    assert "Traceback" not in error


def test_other_settings_message_writes_options():
    recorded = {**json.loads(json.dumps(dataclasses.asdict(LaneKeepingConfig()))), "lr": 0.01}
    del recorded["conv_init"]  # a run recorded before the setting existed
    recorded["noise_variances"] = [0.3]

    differences = differing_settings(recorded, LaneKeepingConfig())

    assert differences == [
        "--conv-init is pytorch in the run and glorot now",
        "--lr is 0.01 in the run and the default now",
        "--noise-variances is 0.3 in the run and 0.1,0.2,0.3 now",
    ]


def test_corrupt_run_record_names_file(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "lane_keeping.json").write_text('{"fingerprint": ')

    with pytest.raises(ValueError, match="lane_keeping.json is not valid JSON"):
        check_run_dir(tiny_config(tmp_path), str(folder))


def test_cli_passes_training_options(tmp_path, monkeypatch):
    from torchlnn.driving import lane_keeping

    seen = {}
    monkeypatch.setattr(
        lane_keeping, "run_lane_keeping", lambda config, **options: seen.update(config=config)
    )

    status = cli_main(["lane-keeping", "--conv-init", "pytorch", "--head-lr", "3e-4", "--lr",
                       "0.002", "--patience", "6", "--runs-root", str(tmp_path)])

    assert status == 0
    assert seen["config"].conv_init == "pytorch"
    assert seen["config"].head_lr == 3e-4
    assert seen["config"].lr == 0.002
    assert seen["config"].patience == 6


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--epochs", "0", "epochs must be at least 1, got 0"),
        ("--episode-steps", "0", "episode_steps must be at least 1, got 0"),
        ("--threads", "0", "threads must be at least 1, got 0"),
        ("--eval-distance", "0", "eval_distance is in metres and must be positive, got 0.0"),
    ],
)
def test_cli_rejects_nonpositive_counts(tmp_path, capsys, option, value, message):
    status = cli_main(["lane-keeping", option, value, "--runs-root", str(tmp_path)])

    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "lane-keeping").exists()  # nothing started


def test_cli_rejects_invalid_setting_with_message(tmp_path, capsys):
    status = cli_main(["lane-keeping", "--patience", "0", "--runs-root", str(tmp_path)])

    assert status == 2
    assert "patience counts epochs and must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "lane-keeping").exists()  # nothing started
