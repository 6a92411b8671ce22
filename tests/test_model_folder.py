"""The model folder's weights: model.safetensors, and 0.1's weights.npz still read."""

import json
import shutil

import numpy as np
from conftest import TINY, run
from safetensors.numpy import load_file

LINES = "The cat sat on the mat.\nLast year, due to my job, I had a loan.\nzebra quokka\n"


def as_0_1(folder):
    """A copy of a model folder as wordlstm 0.1 wrote it: its weights in weights.npz."""
    weights = load_file(folder / "model.safetensors")
    np.savez(folder / "weights.npz", **weights)
    (folder / "model.safetensors").unlink()


def test_a_0_1_folder_loads_and_scores_identically(trained, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained / "default", old)
    as_0_1(old)
    assert sorted(p.name for p in old.iterdir()) == [
        "config.json",
        "tokenizer.json",
        "training.json",
        "training.npz",
        "weights.npz",
    ]
    args = ["score", "--per-token", "--json"]
    now = run(*args, input=LINES, home=trained, check=True)
    before = run(*args, "--model", str(old), input=LINES, home=trained, check=True)
    assert before.out == now.out and len(before.out.splitlines()) == 3
    listed = json.loads(run("models", "--json", home=tmp_path).out)
    assert {r["name"]: r["status"] for r in listed}["old"] == "finished"


def test_training_a_0_1_folder_further_writes_safetensors(corpus, tmp_path):
    home = tmp_path / "store"
    run("train", str(corpus), *TINY, "--epochs", "1", "--model", "m", home=home, check=True)
    as_0_1(home / "m")
    args = [str(corpus), "--model", "m", "--continue", "--epochs", "1"]
    run("train", *args, home=home, check=True)
    files = {p.name for p in (home / "m").iterdir()}
    assert "model.safetensors" in files and "weights.npz" not in files
    run("score", "--model", "m", input=LINES, home=home, check=True)
