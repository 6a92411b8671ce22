"""Latency of autocompletion as one types, and the start-up of `wordlstm suggest`.

    python benchmarks/keyboard.py [--rounds 5] [--startups 15] [--out FILE]

Model: 2 x 200 LSTM, embedding 200, tied, random weights (latency does not depend on what
the weights learnt), on a vocabulary of the 10,000 commonest words of WikiText-2's
test.txt (../shared/corpora). Per keystroke: one character fed to `autocomplete.Typing`
plus reading its 3 suggestions, over the first paragraph of WikiText-2's valid.txt typed
character by character (a space commits a word: one model step), `rounds` times; median
and 99th percentile. Start-up: the whole process `python -m wordlstm suggest` in a
pseudo-terminal, from the spawn to the suggestion bar on the screen, `startups` times.
Targets (issue 22): p99 <= 10 ms per keystroke, start-up <= 0.5 s. Run on a quiet machine.
"""

import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = ROOT.parent / "shared" / "corpora"  # as benchmarks/quality.py finds them

from wordlstm.autocomplete import Typing  # noqa: E402
from wordlstm.checkpoint import Loaded, load_model, save_model  # noqa: E402
from wordlstm.model import Architecture, LanguageModel  # noqa: E402
from wordlstm.text import read_training_lines  # noqa: E402
from wordlstm.tokenizer import Tokenizer  # noqa: E402

VOCAB = 10_000


def make_model(path: Path, corpora: Path) -> None:
    """Saves the random 2 x 200, V = 10,000 model at path."""
    lines = read_training_lines([str(corpora / "wikitext-2" / "test.txt")])
    tok = Tokenizer.train(lines, split="whitespace", vocab_size=VOCAB)
    arch = Architecture(vocab=tok.vocab_size, embed=200, hidden=200, layers=2, tied=True)
    save_model(path, LanguageModel.init(arch, np.random.default_rng(0)), tok, {})


def paragraph(corpora: Path) -> str:
    """The first paragraph of WikiText-2's valid.txt (its first long line)."""
    lines = read_training_lines([str(corpora / "wikitext-2" / "valid.txt")])
    return next(line.strip() for line in lines if len(line.split()) > 50)


def keystroke_latencies(loaded: Loaded, text: str, rounds: int) -> list[float]:
    """Seconds per keystroke (feed one character, read the suggestions), all rounds."""
    times = []
    for _ in range(rounds):
        typing = Typing(loaded)
        for ch in text:
            start = time.perf_counter()
            typing.feed(ch)
            typing.suggestions()
            times.append(time.perf_counter() - start)
    return times


def startup(model: Path, home: Path, timeout: float = 30.0) -> float:
    """Seconds from spawning `wordlstm suggest` in a pseudo-terminal to its first bar."""
    master, slave = pty.openpty()
    # the pseudo-terminal answers no cursor-position request: tell prompt_toolkit not to ask
    env = dict(os.environ, WORDLSTM_HOME=str(home), PYTHONPATH=str(ROOT), TERM="xterm")
    env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", "suggest", "--model", str(model)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        while not (b" 1 " in seen and b">" in seen.split(b" 1 ", 1)[1]):  # the bar, the prompt
            left = timeout - (time.perf_counter() - start)
            if left <= 0 or not select.select([master], [], [], left)[0]:
                raise SystemExit(f"no prompt within {timeout} s: {seen[-300:]!r}")
            seen += os.read(master, 65536)
        elapsed = time.perf_counter() - start
        os.write(master, b"\x04")  # Ctrl-D ends it
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="times the paragraph is typed")
    parser.add_argument("--startups", type=int, default=15, help="suggest start-ups timed")
    parser.add_argument("--out", help="also write the figures here as JSON")
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="the corpora folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "keyboard"
        make_model(model, args.corpora)
        text = paragraph(args.corpora)
        times = np.array(keystroke_latencies(load_model(str(model)), text, args.rounds))
        starts = [startup(model, Path(tmp)) for _ in range(args.startups)]
    result = {
        "keystrokes": int(len(times)),
        "keystroke_median_ms": float(np.median(times) * 1e3),
        "keystroke_p99_ms": float(np.percentile(times, 99) * 1e3),
        "suggest_startup_median_s": statistics.median(starts),
        "suggest_startup_range_s": [min(starts), max(starts)],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
