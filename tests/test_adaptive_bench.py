"""benchmarks/adaptive.py, the adaptive softmax's benchmark: its synthetic corpus holds
every word in Zipfian proportions, each of its four sides times speed.py's training step (in
a worker process, as the benchmark runs it), and its ratios are medians of per-round ratios."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))  # adaptive.py imports speed and quality
spec = importlib.util.spec_from_file_location("adaptive_bench", ROOT / "benchmarks" / "adaptive.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# CI installs torch (.ci/run): there its sides must run, not skip
TORCH_REQUIRED = os.environ.get("CI", "").lower() in ("true", "1")


def test_the_corpus_holds_every_word_by_zipfs_law():
    counts = np.bincount(bench.zipf_corpus(1000), minlength=1001)
    assert counts[1000] == 0 and counts[:1000].min() == 1
    assert (np.diff(counts[:1000]) <= 0).all()  # ids ranked by frequency
    assert (counts[0], counts[1], counts[9], counts[99]) == (1000, 500, 100, 10)


def test_streams_are_stretches_of_the_corpus_repeated_when_short():
    corpus = bench.zipf_corpus(50)
    ids = bench.zipf_tokens(50, (7, 3))
    assert ids.shape == (7, 3) and ids.flags.c_contiguous
    for j in range(3):
        assert (ids[:, j] == corpus[7 * j : 7 * j + 7]).all()
    twice = bench.zipf_tokens(50, (len(corpus), 2))
    assert (twice[:, 0] == corpus).all() and (twice[:, 1] == corpus).all()


@pytest.mark.parametrize("side", bench.SIDES)
def test_each_side_times_a_training_step(side):
    if bench.SIDES[side][0] == "PyTorch" and not TORCH_REQUIRED:
        pytest.importorskip("torch")
    times = bench.train_times(side, 1, 300, (20, 100))
    assert len(times) == 1 and times[0] > 0


def test_a_worker_prints_its_times_and_peak_rss_as_json():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "adaptive.py"), "--worker", "numpy-adaptive"]
    args = ["--steps", "2", "--vocab", "300", "--cutoffs", "20,100"]
    proc = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert len(result["values"]) == 2 and min(result["values"]) > 0
    assert result["peak_rss_mb"] > 0


def test_ratios_are_medians_of_per_round_ratios(tmp_path):
    """Round ratios 10, 30 and 5: their median is 10 where the medians' ratio is 20."""
    tok_s = {"numpy-adaptive": [10.0, 30.0, 20.0], "numpy-full": [1.0, 1.0, 4.0]}
    speed = {
        "command": "python benchmarks/adaptive.py",
        "date": "today",
        "cores": 2,
        "vocab": 300,
        "cutoffs": [20, 100],
        "cluster_shares": bench.cluster_shares(300, (20, 100)),
        "rounds": 3,
        "steps": 2,
        "tok_s": tok_s,
        "peak_rss_mb": {"numpy-adaptive": 60.0, "numpy-full": 70.0},
        "ratios": bench.ratios(tok_s),
        "foreign_cores": [0.0] * 6,
    }
    assert list(speed["ratios"]) == ["wordlstm adaptive / wordlstm full"]
    bench.write(tmp_path / "adaptive.md", {"speed": speed})
    table = (tmp_path / "adaptive.md").read_text()
    assert "| wordlstm adaptive / wordlstm full | **10.00x** | 10.00, 30.00, 5.00 |" in table
    assert json.loads((tmp_path / "adaptive.json").read_text())["speed"]["tok_s"] == tok_s
