"""Shared fixtures: a private model store and a tiny trained model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Today, due to my job, I need a loan.",
    "Last year, due to my job, I had a loan.",
    "The cat sat on the mat.",
    "The dog sat on the rug.",
    "I like green tea in the morning.",
    "We walked to the river after lunch.",
]

TINY = ["--embed", "16", "--hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "6"]


def run(
    *args: str,
    input: str | bytes | None = None,
    home: Path | None = None,
    check=False,
    cwd: Path | None = None,
):
    """Runs `python -m wordlstm ARGS` as a user would; returns the CompletedProcess."""
    env = dict(os.environ)
    env.pop("WORDLSTM_DEBUG", None)
    if home is not None:
        env["WORDLSTM_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(
        [sys.executable, "-m", "wordlstm", *args],
        input=input,
        capture_output=True,
        env=env,
        timeout=300,
        cwd=cwd,
    )
    proc.out = proc.stdout.decode("utf-8", "replace")
    proc.err = proc.stderr.decode("utf-8", "replace")
    if check:
        assert proc.returncode == 0, proc.err
    return proc


def tiny_job(
    files: list[Path],
    model: Path,
    *,
    epochs: int = 3,
    resume: bool = False,
    dropout: float | None = None,
    **recipe,
):
    """The job of `wordlstm train FILES *TINY --epochs N --model PATH [--resume]
    [--dropout D]`, to run in-process with `trainjob.train_files` (same defaults, so the two
    can resume each other)."""
    from wordlstm.train import Recipe
    from wordlstm.trainjob import ModelSettings, TrainJob

    return TrainJob(
        files=[str(f) for f in files],
        model=str(model),
        net=ModelSettings(embed=16, hidden=16, layers=1, dropout=dropout),
        recipe=Recipe(epochs=epochs, bptt=6, batch_size=4, **recipe),
        resume=resume,
    )


def max_difference(a: Path, b: Path, file: str = "weights.npz") -> float:
    """The largest absolute difference between the arrays of two model folders' npz files."""
    with np.load(a / file) as x, np.load(b / file) as y:
        assert sorted(x.files) == sorted(y.files)
        return max(float(np.abs(x[k] - y[k]).max()) for k in x.files)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(SENTENCES * 40) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, corpus) -> Path:
    """A store holding a tiny model called `default`, trained once for the session."""
    home = tmp_path_factory.mktemp("trained") / "store"
    proc = run("train", str(corpus), *TINY, "--epochs", "3", "--json", home=home, check=True)
    summary = json.loads(proc.out)
    assert summary["model"] == "default"
    return home


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """A store whose `default` model learnt the first 3,000 lines of corpora/demo.txt: one
    small layer, Adam, two epochs, trained in-process once for the session (seconds)."""
    from wordlstm.train import Recipe
    from wordlstm.trainjob import ModelSettings, TrainJob, train_files

    root = tmp_path_factory.mktemp("demo")
    lines = (ROOT / "corpora" / "demo.txt").read_text(encoding="utf-8").splitlines()[:3000]
    (root / "demo.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = TrainJob(
        files=[str(root / "demo.txt")],
        model=str(root / "store" / "default"),
        net=ModelSettings(embed=16, hidden=32, layers=1, dropout=0.0, tied=False, forget_bias=0.0),
        recipe=Recipe(epochs=2, optimizer="adam", lr=0.01, average=False),
    )
    train_files(job)
    return root / "store"
