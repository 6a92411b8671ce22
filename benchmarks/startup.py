"""Does `complete` start as fast as another tree's? Trains one tiny model with the other tree
(so both can read its folder), byte-compiles both trees, then times fresh `wordlstm complete`
processes of each tree alternately: CPU time (user + system) and wall, medians per round.

    python benchmarks/startup.py OTHER_TREE [--pairs 30] [--rounds 3]
"""

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DEMO = HERE / "corpora" / "demo.txt"


def command(tree: Path, home: Path, *args: str) -> tuple[list[str], dict]:
    """`wordlstm ARGS` with the code of `tree` (run from `home`: `python -m` puts the working
    directory first on the path), one BLAS thread."""
    env = dict(os.environ, PYTHONPATH=str(tree), WORDLSTM_HOME=str(home), NO_COLOR="1")
    env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-m", "wordlstm", *args], env


def timed(tree: Path, home: Path) -> tuple[float, float]:
    """CPU seconds and wall seconds of one `complete` process."""
    cmd, env = command(tree, home, "complete", "Last year I", "--model", "ab")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=home, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("other", type=Path)
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    trees = {"this": HERE, "other": args.other.resolve()}
    for tree in trees.values():  # a run must not pay for compiling (PYTHONDONTWRITEBYTECODE)
        compileall.compile_dir(tree / "wordlstm", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        cmd, env = command(trees["other"], home, "train", str(DEMO), "--model", "ab")
        subprocess.run([*cmd, "--epochs", "1"], env=env, cwd=home, check=True, capture_output=True)
        for r in range(args.rounds):
            cpu: dict[str, list[float]] = {name: [] for name in trees}
            wall: dict[str, list[float]] = {name: [] for name in trees}
            for _ in range(args.pairs):
                for name, tree in trees.items():
                    c, w = timed(tree, home)
                    cpu[name].append(c)
                    wall[name].append(w)
            med = {name: statistics.median(cpu[name]) for name in trees}
            print(
                f"round {r + 1}: CPU this {med['this']:.3f} s, other {med['other']:.3f} s, "
                f"this/other {med['this'] / med['other']:.3f}; wall this "
                f"{statistics.median(wall['this']):.3f} s, other "
                f"{statistics.median(wall['other']):.3f} s"
            )


if __name__ == "__main__":
    main()
