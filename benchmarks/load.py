"""Training on a busy machine: `wordlstm train`'s tokens/s at config S (2x200, batch 20, the
PTB split's training text, V = 10,000) on a quiet machine and with one busy process (a
Python `while True` loop pinned to the last core), in one run. The default thread count
(by the load) against fixed counts; each run is a fresh process, the cases alternate round
by round, and a run's figure is the median of its epochs' tokens/s.

    python benchmarks/load.py [--rounds 3] [--epochs 3] [--out benchmarks/load.md]
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PTB = HERE.parent / "shared" / "corpora" / "ptb"
CASES = [  # (name, busy process?, --threads or None for the default)
    ("quiet, default", False, None),
    ("busy, default", True, None),
    ("busy, 2 threads", True, 2),
    ("busy, 1 thread", True, 1),
    ("quiet, 1 thread", False, 1),
]
EPOCH = re.compile(r"([\d,]+) tok/s \| (\d+) threads?")


def train(home: Path, threads: int | None, epochs: int) -> tuple[float, list[int]]:
    """Median tokens/s of a fresh `wordlstm train` run's epochs, and each epoch's threads."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    env |= {"WORDLSTM_HOME": str(home), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "wordlstm", "train", str(PTB / "ptb.valid.txt")]
    cmd += ["--valid", str(PTB / "ptb.test.txt"), "--split", "whitespace", "--vocab-size", "0"]
    cmd += ["--epochs", str(epochs), "--model", "m", "--force"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, env=env, cwd=home, check=True, capture_output=True, text=True)
    epochs_seen = EPOCH.findall(done.stdout + done.stderr)
    rates = [float(rate.replace(",", "")) for rate, _ in epochs_seen]
    return statistics.median(rates), [int(n) for _, n in epochs_seen]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).with_name("load.md")))
    args = p.parse_args()
    last_core = max(os.sched_getaffinity(0))
    rates: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    threads: dict[str, set[int]] = {name: set() for name, _, _ in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, busy, count in CASES:
                loop = None
                if busy:
                    loop_cmd = [
                        "taskset",
                        "-c",
                        str(last_core),
                        sys.executable,
                        "-c",
                        "while True: pass",
                    ]
                    loop = subprocess.Popen(loop_cmd)
                    time.sleep(1.0)  # the loop is running before training starts
                try:
                    rate, used = train(Path(tmp), count, args.epochs)
                finally:
                    if loop is not None:
                        loop.kill()
                        loop.wait()
                rates[name].append(rate)
                threads[name].update(used)
                print(f"round {r + 1}: {name}: {rate:,.0f} tok/s, threads {used}", flush=True)
    quiet = statistics.median(rates["quiet, default"])
    lines = [
        "# Training on a busy machine",
        "",
        f"Measured by `python benchmarks/load.py --rounds {args.rounds} --epochs {args.epochs}` "
        f"on {os.cpu_count()} cores ({datetime.date.today()}). `wordlstm train` at config S "
        "(2x200, batch 20, the PTB split, V = 10,000); busy = one `while True` Python loop "
        f"pinned to core {last_core}. Medians over the rounds of each run's median epoch; "
        "share = of the quiet machine's default.",
        "",
        "| case | tok/s | share of quiet default | threads used | rounds |",
        "|---|---|---|---|---|",
    ]
    for name, _, _ in CASES:
        med = statistics.median(rates[name])
        each = ", ".join(f"{x:,.0f}" for x in rates[name])
        used = ", ".join(map(str, sorted(threads[name])))
        lines.append(f"| {name} | {med:,.0f} | {med / quiet:.0%} | {used} | {each} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
