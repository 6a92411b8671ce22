"""Shared fixtures: a private model store and a tiny trained model."""

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

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


def assert_one_error_line(proc, code: int = 2, *words: str) -> str:
    """The run failed with exit `code` and one `error:` line (no traceback) holding each of
    `words`; returns that line."""
    assert proc.returncode == code, (proc.returncode, proc.err)
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.err
    assert "Traceback" not in proc.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def cli_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI run in a test: this one without PYTHONUNBUFFERED (a user's
    shell does not set it, so streaming must not depend on it) and WORDLSTM_DEBUG, with
    NO_COLOR=1, WORDLSTM_HOME=home if given, and `extra` on top."""
    env = dict(os.environ)
    for name in ("PYTHONUNBUFFERED", "WORDLSTM_DEBUG"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    if home is not None:
        env["WORDLSTM_HOME"] = str(home)
    return {**env, **extra}


def read_line(stream, timeout: float = 60.0) -> bytes:
    """The next line from a subprocess's pipe (b"" at its end); fails the test instead of
    hanging when none comes within `timeout` seconds. Reads the descriptor byte by byte, so
    nothing waits in the stream's buffer and a later read of the stream goes on from here."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no line within {timeout:g} s (so far: {bytes(line)!r})")
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return bytes(line)


def run(
    *args: str,
    input: str | bytes | None = None,
    home: Path | None = None,
    check=False,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
):
    """Runs `python -m wordlstm ARGS` as a user would; returns the CompletedProcess. `env`
    adds variables to `cli_env(home)`."""
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(
        [sys.executable, "-m", "wordlstm", *args],
        input=input,
        capture_output=True,
        env=cli_env(home, **(env or {})),
        timeout=300,
        cwd=cwd,
    )
    proc.out = proc.stdout.decode("utf-8", "replace")
    proc.err = proc.stderr.decode("utf-8", "replace")
    if check:
        assert proc.returncode == 0, proc.err
    return proc


def read_epoch_line(stream, timeout: float = 60.0) -> bytes:
    """The next line of a training run's stderr after its start line (vocabulary, tokens)."""
    line = read_line(stream, timeout)
    return read_line(stream, timeout) if line.startswith(b"vocabulary ") else line


def start_training(
    home: Path, text: Path, model: str, *args: str, epochs: int = 3
) -> subprocess.Popen:
    """`wordlstm train TEXT *TINY --epochs N --model MODEL ARGS` in the background, once it
    has finished its first epoch (so it holds the model's writer lock); stderr is a pipe."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", "train", str(text), *TINY, "--epochs", str(epochs)]
        + ["--model", model, *args],
        env=cli_env(home),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert read_epoch_line(proc.stderr).startswith(b"epoch   1 |")
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
    from wordlstm.settings import ModelSettings, Recipe
    from wordlstm.trainjob import TrainJob

    return TrainJob(
        files=[str(f) for f in files],
        model=str(model),
        net=ModelSettings(embed=16, hidden=16, layers=1, dropout=dropout),
        recipe=Recipe(epochs=epochs, bptt=6, batch_size=4, **recipe),
        resume=resume,
    )


def training_lines(paths) -> list[str]:
    """The lines of training files as training reads them (`text.training_pieces`), the
    pieces of a long line joined."""
    from wordlstm.text import training_pieces

    lines, line = [], []
    for path in paths:
        for piece, ends in training_pieces(str(path)):
            line.append(piece)
            if ends:
                lines.append("".join(line))
                line = []
    return lines


def arrays(file: Path) -> dict[str, np.ndarray]:
    """The arrays of an npz or safetensors file."""
    if file.suffix == ".safetensors":
        return load_file(file)
    with np.load(file, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def max_difference(a: Path, b: Path, file: str = "model.safetensors") -> float:
    """The largest absolute difference between the arrays of two model folders' files."""
    x, y = arrays(a / file), arrays(b / file)
    assert sorted(x) == sorted(y)
    return max(float(np.abs(x[k] - y[k]).max()) for k in x)


@pytest.fixture(scope="session", autouse=True)
def token_cache(tmp_path_factory):
    """Training's token cache (`wordlstm.tokencache`) in a folder of the session's, never
    the user's (subprocesses inherit it)."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


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
    from wordlstm.settings import ModelSettings, Recipe
    from wordlstm.trainjob import TrainJob, train_files

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


@pytest.fixture(scope="session")
def long_range_model(tmp_path_factory) -> Path:
    """A model folder that learnt corpora/demo.txt well enough to carry the time phrase to
    the verb: one layer of 256 cells, Adam without dropout or forget-gate bias, and a fixed
    number of epochs, so the result does not depend on the machine's speed (about 30 s here;
    it learns the rule in epoch 3; with the default bias of 1 this model had not learnt it
    by epoch 5). Trained in-process once for the session."""
    from wordlstm.settings import ModelSettings, Recipe
    from wordlstm.trainjob import TrainJob, train_files

    path = tmp_path_factory.mktemp("long-range") / "long-range"
    job = TrainJob(
        files=[str(ROOT / "corpora" / "demo.txt")],
        model=str(path),
        net=ModelSettings(
            embed=128, hidden=256, layers=1, dropout=0.0, tied=False, forget_bias=0.0
        ),
        recipe=Recipe(epochs=5, optimizer="adam", lr=0.005, average=False),
    )
    train_files(job)
    return path


def load_generator():
    """corpora/make_demo.py as a module: the demo corpus's sentence generator."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_demo", ROOT / "corpora" / "make_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_demo"] = module
    spec.loader.exec_module(module)
    return module
