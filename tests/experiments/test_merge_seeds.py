"""Merging one model's rows from separate experiment calls: statistics, Runs list, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from torchlnn.experiments.runner import get_spec, merge_rows, render_table, write_row

from .scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("merge_seeds")


def make_row(seeds, values, seconds, command, **changes):
    """A row as ``summarise`` writes it, for the given seeds and test values."""
    row = {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "values": list(values),
        "seeds": list(seeds),
        "parameters": 1234,
        "seconds_per_epoch": seconds,
        "cpu_seconds_per_epoch": seconds - 1.0,
        "epochs": 40,
        "epochs_completed": [40] * len(seeds),
        "best_epochs": [39] * len(seeds),
        "full_protocol": False,
        "note": "40 of 200 epochs",
        "command": command,
        "config": {"model": "cfc", "epochs": 40, "lr": 0.001},
        "run_dirs": [f"/runs/{seed}" for seed in seeds],
        "environment": {"torchlnn_commit": f"commit{seeds[0]}", "cpu": "test CPU"},
        "finished": f"2026-12-0{seeds[0] + 1}T00:00:00",
    }
    row.update(changes)
    return row


def test_merge_pools_every_seed():
    first = make_row([0], [98.0], 40.0, "cmd seed 0")
    later = make_row([1, 2], [99.0, 97.0], 46.0, "cmd seeds 1 2")

    merged = merge_rows([first, later])

    assert merged["seeds"] == [0, 1, 2]
    assert merged["values"] == [98.0, 99.0, 97.0]
    assert merged["mean"] == pytest.approx(98.0)
    assert merged["std"] == pytest.approx(np.std([98.0, 99.0, 97.0]))
    # Seconds per epoch weighted by seeds: (40 + 2 * 46) / 3.
    assert merged["seconds_per_epoch"] == pytest.approx(44.0)
    assert merged["cpu_seconds_per_epoch"] == pytest.approx(43.0)
    assert merged["best_epochs"] == [39, 39, 39]
    assert [part["command"] for part in merged["parts"]] == ["cmd seed 0", "cmd seeds 1 2"]
    assert [part["seeds"] for part in merged["parts"]] == [[0], [1, 2]]


def test_merge_lists_training_commits():
    first = make_row([0], [98.0], 40.0, "a", training_commits=["start0", "resumed0"])
    later = make_row([1], [99.0], 40.0, "b")  # written before rows kept their commits

    merged = merge_rows([first, later])

    assert merged["training_commits"] == ["start0", "resumed0", "commit1"]
    assert [part["commits"] for part in merged["parts"]] == [["start0", "resumed0"], ["commit1"]]


def test_training_commits_from_run_records(tmp_path):
    from torchlnn.experiments.runner import training_commits

    def run_record(name, started, attempts):
        folder = tmp_path / name
        folder.mkdir()
        record = {
            "environment": {"torchlnn_commit": started},
            "attempts": [{"environment": None}]
            + [{"environment": {"torchlnn_commit": c}} for c in attempts],
        }
        (folder / "run.json").write_text(json.dumps(record))
        return folder

    first = run_record("seed0", "aaa", ["aaa", "bbb"])  # resumed once at a later commit
    second = run_record("seed1", "ccc", [])

    commits = training_commits([first, tmp_path / "gone", second])

    assert commits == ["aaa", "bbb", "ccc"]


def test_merge_of_merged_keeps_parts():
    merged = merge_rows([make_row([0], [98.0], 40.0, "a"), make_row([1], [99.0], 40.0, "b")])
    again = merge_rows([merged, make_row([2], [97.0], 40.0, "c")])

    assert [part["command"] for part in again["parts"]] == ["a", "b", "c"]
    assert again["seeds"] == [0, 1, 2]


@pytest.mark.parametrize(
    "change",
    [{"config": {"model": "cfc", "epochs": 40, "lr": 0.01}}, {"epochs": 20}, {"note": "other"}],
)
def test_merge_rejects_other_settings(change):
    first = make_row([0], [98.0], 40.0, "a")
    other = make_row([1], [99.0], 40.0, "b", **change)

    with pytest.raises(ValueError, match="differs from row 0"):
        merge_rows([first, other])


def test_merge_rejects_repeated_seed():
    with pytest.raises(ValueError, match=r"Seeds \[0\]"):
        merge_rows([make_row([0], [98.0], 40.0, "a"), make_row([0, 1], [98.0, 97.0], 40.0, "b")])


def test_table_lists_every_command():
    merged = merge_rows(
        [make_row([0], [98.0], 40.0, "cmd A"), make_row([1], [96.0], 40.0, "cmd B")]
    )
    record = {
        "title": "T",
        "metric": "test_accuracy",
        "metric_label": "test accuracy (%)",
        "models": {"cfc": merged},
    }

    table = render_table(record)

    assert "| cfc | 97.00 ± 1.00 |" in table
    assert "- cfc: `cmd A`; seeds [0];" in table
    assert "- cfc: `cmd B`; seeds [1];" in table
    assert "commit `commit0`" in table
    assert "commit `commit1`" in table
    assert "flushed" not in table


def test_table_names_flushed_runs():
    merged = merge_rows(
        [
            make_row([0], [98.0], 40.0, "cmd A"),
            make_row([1], [96.0], 40.0, "cmd B", flush_denormal=True),
        ]
    )

    table = render_table(
        {"title": "T", "metric": "test_accuracy", "metric_label": "acc", "models": {"cfc": merged}}
    )

    assert (
        "`cmd A`; seeds [0]; best epochs [39]; torchlnn None, trained at commit `commit0`" in table
    )
    assert "subnormal floats flushed to zero; finished 2026-12-02" in table
    assert table.count("flushed") == 1


def test_script_merges_into_output(tmp_path, script, capsys):
    spec = get_spec("xor")
    folders = [tmp_path / "seed-0", tmp_path / "seed-1"]
    write_row(spec, "cfc", make_row([0], [98.0], 40.0, "a"), folders[0])
    write_row(spec, "lstm", make_row([0], [50.0], 10.0, "l"), folders[0])
    write_row(spec, "cfc", make_row([1], [99.0], 42.0, "b"), folders[1])

    assert script.main(["xor", "cfc", *map(str, folders), "--out", str(folders[0])]) == 0

    record = json.loads((folders[0] / "xor.json").read_text())
    assert record["models"]["cfc"]["seeds"] == [0, 1]
    assert record["models"]["cfc"]["mean"] == pytest.approx(98.5)
    assert record["models"]["lstm"]["seeds"] == [0]  # other rows are kept
    assert "seeds [0, 1]" in capsys.readouterr().out
    assert "`b`; seeds [1]" in (folders[0] / "xor.md").read_text()


def test_script_names_missing_row(tmp_path, script):
    write_row(get_spec("xor"), "lstm", make_row([0], [50.0], 10.0, "l"), tmp_path)

    with pytest.raises(SystemExit, match="no row for 'cfc' .*it has lstm"):
        script.main(["xor", "cfc", str(tmp_path), "--out", str(tmp_path)])
