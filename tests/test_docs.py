"""Every Python code block in the README and the docs runs.

A page reads top to bottom, so its blocks run in order as one program in a fresh process: a
later block may use what an earlier one defined. A page whose examples read files that its
shell commands write (a trained model, an exported graph) lists those commands in
`SHELL_SETUP`; the test runs them first, as a reader would, with fewer training steps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
BIN = Path(sys.executable).parent

SHELL_SETUP = {
    "docs/deployment.md": [
        [
            sys.executable,
            str(ROOT / "examples/toy_lane_policy.py"),
            "--output",
            "toy_policy.pt",
            "--iterations",
            "10",
        ],
        [str(BIN / "torchlnn"), "export", "onnx", "toy_policy.pt", "-o", "toy_policy.onnx"],
    ],
}


def pages():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
        if blocks:
            name = page.relative_to(ROOT).as_posix()
            yield pytest.param(name, blocks, id=name)


def test_setup_commands_name_pages_with_code():
    names = {param.values[0] for param in pages()}
    assert set(SHELL_SETUP) <= names


@pytest.mark.parametrize(("name", "blocks"), list(pages()))
def test_page_code_runs(name, blocks, tmp_path):
    environment = dict(os.environ, MPLBACKEND="Agg", SDL_VIDEODRIVER="dummy")

    for command in SHELL_SETUP.get(name, []):
        done = subprocess.run(
            command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"

    # One program; each block first writes its number to stderr, so a failure names its block.
    program = "\n".join(
        f"import sys; print('block {index}', file=sys.stderr, flush=True)\n{code}"
        for index, code in enumerate(blocks)
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = re.findall(r"^block (\d+)$", done.stderr, re.MULTILINE)
    where = f"block {failed[-1]}:\n{blocks[int(failed[-1])]}" if failed else "before block 0"
    assert done.returncode == 0, f"{name}, {where}\n{done.stderr[-3000:]}"
