"""A training text larger than memory: a generated Zipfian text (50,000 word types, every one
present) trained for a bounded time by a 1x64 model, measured in one run.

    python benchmarks/bigtext.py [--bytes 1e9] [--max-time 120] [--steps 50]
        [--dir /tmp/wordlstm-bigtext] [--out benchmarks/bigtext.md]

Reports the peak resident memory of the whole `wordlstm train` process (tokenising
included), the tokenising speed (words/s from start to the start line,
a cold token cache: hashing, building the vocabulary and encoding, all streamed), the same
start with the cache warm, and an exact resume: a run stopped after `steps` steps and
resumed to 2 x `steps` ends with the weights, optimizer and state of a run stopped at
2 x `steps` (compared array by array, in-process). The text is generated once and kept.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TYPES = 50_000
ZIPF = 1.0  # the exponent of the word frequencies
LINE_WORDS = (5, 25)  # words per line, uniform
BLOCK_WORDS = 5_000_000  # generated at once
MODEL = ["--embed", "64", "--hidden", "64", "--layers", "1"]


def generate(path: Path, size: float, seed: int = 0) -> int:
    """Writes about `size` bytes of Zipfian text to `path`; returns its word count."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    types: set[str] = set()
    while len(types) < TYPES:
        types.add("".join(rng.choice(letters, size=int(rng.integers(2, 11)))))
    vocab = sorted(types)
    p = 1.0 / np.arange(1, TYPES + 1) ** ZIPF
    p /= p.sum()
    table = [w.encode() + b" " for w in vocab] + [w.encode() + b"\n" for w in vocab]
    block = int(min(BLOCK_WORDS, max(1000, size / 6)))  # about 6 bytes a word
    words = written = 0
    with open(path, "wb") as out:
        while written < size:
            ranks = rng.choice(TYPES, size=block, p=p)
            ends = np.zeros(block, dtype=np.int64)
            cuts = np.cumsum(rng.integers(*LINE_WORDS, size=block // LINE_WORDS[0])) - 1
            ends[cuts[cuts < block]] = 1
            ends[-1] = 1  # a block ends its line
            data = b"".join(map(table.__getitem__, (ranks + TYPES * ends).tolist()))
            out.write(data)
            written += len(data)
            words += block
    return words


# Runs a command and prints its peak RSS in KiB. A process started from this one would
# count this one's memory as its own (the kernel keeps the peak of the memory it execs
# from), and this one holds the generated text's tables: a small process starts it instead.
PEAK = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if status == 0 else -1)
"""


def timed_train(text: Path, home: Path, model: str, max_time: float) -> dict:
    """`wordlstm train` in a child process: seconds to its start line, in all, peak RSS."""
    env = {**os.environ, "WORDLSTM_HOME": str(home), "XDG_CACHE_HOME": str(home / "cache")}
    command = [sys.executable, "-m", "wordlstm", "train", str(text), *MODEL, "--epochs", "1"]
    begin = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", PEAK, *command, "--max-time", str(max_time), "--model", model],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    started = None
    for line in proc.stderr:
        if started is None and line.startswith(b"vocabulary "):
            started = time.perf_counter() - begin
            print("  " + line.decode().strip(), flush=True)
    rss = int(proc.stdout.read())
    if proc.wait() != 0 or rss < 0:
        raise SystemExit("wordlstm train failed")
    return {"start": started, "seconds": time.perf_counter() - begin, "rss": rss}


def exact_resume(text: Path, home: Path, steps: int) -> float:
    """The largest difference between the arrays of a run stopped at `steps` and resumed to
    2 x `steps` and those of a run stopped at 2 x `steps` (0.0: the same)."""
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    from wordlstm.errors import Interrupted
    from wordlstm.settings import ModelSettings, Recipe
    from wordlstm.trainjob import TrainJob, train_files

    def stop_at(step: int):
        def on_progress(p) -> None:
            if p.step == step:
                os.kill(os.getpid(), signal.SIGINT)

        return on_progress

    def job(name: str, resume: bool = False) -> TrainJob:
        net = ModelSettings(embed=64, hidden=64, layers=1)
        return TrainJob([str(text)], str(home / name), net=net, recipe=Recipe(), resume=resume)

    for name, stops in (("resumed", [steps, 2 * steps]), ("straight", [2 * steps])):
        for k, step in enumerate(stops):
            try:
                train_files(job(name, resume=k > 0), on_progress=stop_at(step))
            except Interrupted:
                pass
    a, b = (np.load(home / name / "training.npz") for name in ("resumed", "straight"))
    assert sorted(a.files) == sorted(b.files)
    return max(float(np.abs(a[k] - b[k]).max(initial=0.0)) for k in a.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=float, default=1e9)
    parser.add_argument("--max-time", type=float, default=120.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/wordlstm-bigtext"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    text = args.dir / f"zipf-{args.bytes:.0e}.txt"
    counted = text.with_suffix(".words")
    if not counted.exists():
        print(f"generating {text} ...", flush=True)
        counted.write_text(str(generate(text, args.bytes)))
    words = int(counted.read_text())
    home = args.dir / "home"
    shutil.rmtree(home, ignore_errors=True)
    print("training, cold cache ...", flush=True)
    cold = timed_train(text, home, "cold", args.max_time)
    print("training, warm cache ...", flush=True)
    warm = timed_train(text, home, "warm", args.max_time)
    print("exact resume ...", flush=True)
    difference = exact_resume(text, home, args.steps)
    cache = sum(f.stat().st_size for f in (home / "cache").rglob("*") if f.is_file())
    command = " ".join(["python benchmarks/bigtext.py", *sys.argv[1:]])
    report = "\n".join(
        [
            f"# A text larger than memory\n\n`{command}`\n",
            f"Text: {text.stat().st_size / 1e9:.2f} GB, {words:,} words, {TYPES:,} types "
            f"(Zipf {ZIPF}); model 1x64; `--max-time {args.max_time:g}`; "
            f"cache {cache / 1e9:.2f} GB.",
            "",
            "| run | to the start line | tokenising | whole run | peak RSS |",
            "|---|---|---|---|---|",
            f"| cold cache | {cold['start']:.1f} s | {words / cold['start']:,.0f} words/s "
            f"| {cold['seconds']:.1f} s | {cold['rss'] / 1024:.0f} MB |",
            f"| warm cache | {warm['start']:.1f} s | (read from the cache) "
            f"| {warm['seconds']:.1f} s | {warm['rss'] / 1024:.0f} MB |",
            "",
            f"Stopped at step {args.steps} and resumed to {2 * args.steps} against stopped at "
            f"{2 * args.steps}: largest difference of any array {difference:g}.",
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
