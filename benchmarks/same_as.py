"""Does this tree train exactly as another does? Trains the PTB split's default recipe for a
few epochs with each tree's code (one BLAS thread, fresh processes) and compares every saved
weight bit for bit, and `eval --cache-size 0`'s figures. A refactor that changes no number
shows as identical weights, so the quality rows measured with the other tree stand for it.

    python benchmarks/same_as.py OTHER_TREE [--epochs 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
CORPORA = HERE.parent / "shared" / "corpora" / "ptb"


def run(tree: Path, home: Path, *args: str) -> str:
    """`wordlstm ARGS` with the code of `tree`, run from the store's folder: `python -m` puts
    the working directory first on the path, so a run from a checkout would use its code."""
    env = dict(os.environ, PYTHONPATH=str(tree), WORDLSTM_HOME=str(home), NO_COLOR="1")
    env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "wordlstm", *args]
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, env=env, cwd=home, check=True, capture_output=True, text=True)
    return done.stdout


def weights(folder: Path) -> dict[str, np.ndarray]:
    """A model folder's weights, from model.safetensors or 0.1's weights.npz."""
    if (folder / "model.safetensors").exists():
        from safetensors.numpy import load_file

        return load_file(folder / "model.safetensors")
    with np.load(folder / "weights.npz", allow_pickle=False) as f:
        return dict(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("other", type=Path)
    p.add_argument("--epochs", default="2")
    args = p.parse_args()
    train = [str(CORPORA / "ptb.valid.txt"), "--valid", str(CORPORA / "ptb.test.txt")]
    train += ["--split", "whitespace", "--vocab-size", "0", "--epochs", args.epochs]
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tree in (("this", HERE), ("other", args.other.resolve())):
            home = Path(tmp) / name
            run(tree, home, "train", *train)
            figures = run(
                tree,
                home,
                "eval",
                train[2],
                "--json",
                "--no-keyboard",
                *(["--cache-size", "0"] if name == "this" else []),
            )
            found[name] = (weights(home / "default"), json.loads(figures.splitlines()[-1]))
    (mine, mine_eval), (theirs, their_eval) = found["this"], found["other"]
    same = sorted(mine) == sorted(theirs) and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    print(f"weights: {len(mine)} arrays, {'bitwise identical' if same else 'DIFFERENT'}")
    for key in ("perplexity", "top1", "top5"):
        print(f"{key}: this {mine_eval[key]!r}, other {their_eval[key]!r}")
    sys.exit(0 if same and mine_eval["perplexity"] == their_eval["perplexity"] else 1)


if __name__ == "__main__":
    main()
