"""Next-word quality of wordlstm on the benchmark corpora, beside PyTorch's and KenLM's.

    python benchmarks/quality.py [--rows wt2-a,ptb-a,wt2-default,ptb-default] [--out FILE]

Each row trains with `wordlstm train TRAIN --valid EVAL --split whitespace --vocab-size 0`
and evaluates with `wordlstm eval EVAL --json` (the protocol of ../shared/DESIGN.md: state
carried across lines, perplexity over all tokens, top-k over the whole vocabulary; with the
word cache, eval's default, whose perplexity is given beside the model's alone). Config A
is the PyTorch run of ../shared/ANCHORS.md with its flags and its number of epochs; the
"default" rows use wordlstm's default recipe within the training time PyTorch had.
Rows run one after another, never two at once (the machine has two cores).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
# the PyTorch recipe: wordlstm's weight averaging off, PyTorch's LSTM initialisation (no
# forget-gate bias). One difference is left: validation during training reads 64 streams
# where PyTorch's reads 10, so a plateau may fall elsewhere
CONFIG_A = (
    "--layers 2 --hidden 200 --embed 200 --dropout 0.2 --tied --bptt 35 --batch-size 20 "
    "--no-average --forget-bias 0"
).split()
SPLITS = {  # name: (train file, eval file, PyTorch epochs, PyTorch seconds)
    "wt2": ("wikitext-2/test.txt", "wikitext-2/valid.txt", 9, 700),
    "ptb": ("ptb/ptb.valid.txt", "ptb/ptb.test.txt", 40, 461),
}
ROWS = {  # name: (split, extra flags)
    "wt2-a": ("wt2", CONFIG_A + ["--epochs", "9"]),
    "ptb-a": ("ptb", CONFIG_A + ["--epochs", "40"]),
    "wt2-default": ("wt2", ["--max-time", "700"]),
    "ptb-default": ("ptb", ["--max-time", "461"]),
}
KEYBOARD = {  # ../shared/ANCHORS.md: KenLM-5's keystroke savings and top-3 of words
    "wt2": {"KenLM 5-gram": (45.2, 28.6)},
    "ptb": {"KenLM 5-gram": (49.0, 27.8)},
}
ANCHORS = {  # from ../shared/ANCHORS.md: perplexity, top-1, top-5, top-1 / top-5 of words
    "wt2": {
        "PyTorch (config A, 9 epochs, 700 s)": (166.45, 23.0, 43.8, 18.9, 37.5),
        "KenLM 5-gram": (243.7, 19.6, 40.8, 17.0, 34.4),
    },
    "ptb": {
        "PyTorch (config A, 40 epochs, 461 s)": (178.58, 20.3, 39.0, 15.5, 31.3),
        "KenLM 5-gram": (191.4, 20.2, 39.5, 17.2, 31.1),
    },
}


def wordlstm(*args: str, home: Path) -> dict:
    env = dict(os.environ, WORDLSTM_HOME=str(home), NO_COLOR="1")
    cmd = [sys.executable, "-m", "wordlstm", *args, "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])


def run_row(name: str, home: Path) -> dict:
    return train_and_eval(name, *ROWS[name], home)


def train_and_eval(
    name: str, split: str, flags: list[str], home: Path, eval_flags: tuple[str, ...] = ()
) -> dict:
    """Trains model `name` on a split with `flags` beside the protocol's, then evaluates it
    (with `eval_flags`): the row's figures and the command, as the table shows it."""
    train, valid, _, _ = SPLITS[split]
    args = [
        "train",
        str(CORPORA / train),
        "--valid",
        str(CORPORA / valid),
        "--split",
        "whitespace",
        "--vocab-size",
        "0",
        "--model",
        name,
        *flags,
    ]
    trained = wordlstm(*args, home=home)
    evaluated = wordlstm("eval", str(CORPORA / valid), "--model", name, *eval_flags, home=home)
    shown = ["wordlstm", *args[:1], f"$CORPORA/{train}", "--valid", f"$CORPORA/{valid}", *args[4:]]
    return {
        "row": name,
        "split": split,
        "command": " ".join(shown),
        "train": trained,
        "eval": evaluated,
    }


def table(results: list[dict]) -> str:
    lines = [
        "# Quality: wordlstm against PyTorch and KenLM",
        "",
        "Measured by `python benchmarks/quality.py` on this 2-core machine; `$CORPORA` is "
        "`../shared/corpora`. Each wordlstm model is evaluated by `wordlstm eval EVAL` "
        "(state carried across lines, eval batch 10 as in the PyTorch example), with the word "
        "cache that eval mixes in since 2026-12-07 beside the model alone (rows measured before "
        "give the model alone). Figures "
        "for PyTorch and KenLM are quoted from `../shared/ANCHORS.md` (same protocol, same "
        "machine type).",
        "",
        "| split | model | epochs | train s | perplexity, word cache | model alone | top-1 | "
        "top-5 | top-1 / top-5 of words | keystroke savings / top-3 of words typed | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        for r in (r for r in results if r["split"] == split):
            t, e = r["train"], r["eval"]
            lines.append(
                f"| {split} | wordlstm `{r['row']}` | {t['epochs']} | {t['seconds']:.0f} | "
                f"{cached(e)} | {100 * e['top1']:.1f}% | {100 * e['top5']:.1f}% "
                f"| {100 * e['top1_words']:.1f}% / {100 * e['top5_words']:.1f}% | "
                f"{keyboard(e)} | `{r['command']}` |"
            )
        for model, (ppl, t1, t5, w1, w5) in ANCHORS[split].items():
            saved, top3 = KEYBOARD[split].get(model, ("", ""))
            keys = f"{saved}% / {top3}%" if saved else ""
            lines.append(
                f"| {split} | {model} | | | | {ppl} | {t1}% | {t5}% | {w1}% / {w5}% | {keys} "
                "| ANCHORS.md |"
            )
    return "\n".join(lines) + "\n" + seeds()


SEEDS = {"": "1111", "--seed 2": "2", "--seed 3": "3"}  # ablation.tsv's flags: the seed


def seeds() -> str:
    """The default recipe's three seeds on each split, from benchmarks/ablation.tsv (rows of
    benchmarks/ablation.sh), and their medians."""
    path = Path(__file__).with_name("ablation.tsv")
    if not path.exists():
        return ""
    rows = [line.split("\t") for line in path.read_text().splitlines() if line]
    lines = [
        "",
        "## The defaults, three seeds",
        "",
        '`bash benchmarks/ablation.sh CORE TAG SPLIT EPOCHS "[--seed N]"`: `wordlstm train '
        "TRAIN --valid EVAL --split whitespace --vocab-size 0 --epochs EPOCHS [--seed N]` with "
        "one BLAS thread, for the epochs the budget holds on a quiet machine (PTB 40, the epoch "
        "cap, in 351 s of 461; WikiText-2 15 of 700 s: the rows above), then `wordlstm eval "
        "EVAL`. Train s: wall time on a shared core, not a speed figure.",
        "",
        "| split | seed | train s | perplexity, word cache | model alone | top-1 | top-5 | "
        "keystroke savings / top-3 of words typed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        mine = [r for r in rows if r[1] == split and r[3] in SEEDS]
        for r in mine:
            lines.append(
                f"| {split} | {SEEDS[r[3]]} | {r[4]} | {r[5]} | {r[6]} | {r[7]}% | {r[8]}% | "
                f"{r[9]}% / {r[10]}% |"
            )
        if len(mine) == 3:
            med = [statistics.median(float(r[k]) for r in mine) for k in range(5, 11)]
            lines.append(
                f"| {split} | **median** | | **{med[0]:.2f}** | {med[1]:.2f} | {med[2]:.1f}% | "
                f"{med[3]:.1f}% | {med[4]:.1f}% / {med[5]:.1f}% |"
            )
    return "\n".join(lines) + "\n"


def cached(e: dict) -> str:
    """Perplexity with the word cache | of the model alone; rows measured before eval had
    the cache give the model's alone."""
    if e.get("cache_size"):
        return f"**{e['perplexity']:.2f}** | {e['model_perplexity']:.2f}"
    return f"— | **{e['perplexity']:.2f}**"


def keyboard(e: dict) -> str:
    """Keystroke savings / top-3 of words typed, for rows measured since eval gave them."""
    if "keystroke_savings" not in e:
        return "—"
    return f"**{100 * e['keystroke_savings']:.1f}%** / {100 * e['top3_words']:.1f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--out", default=str(Path(__file__).with_name("quality.md")))
    p.add_argument("--json-out", default=str(Path(__file__).with_name("quality.json")))
    args = p.parse_args()
    # rows measured earlier stay in the table until they are measured again
    saved = Path(args.json_out)
    results = {r["row"]: r for r in json.loads(saved.read_text())} if saved.exists() else {}
    with tempfile.TemporaryDirectory(prefix="wordlstm-quality-") as home:
        for name in args.rows.split(","):
            results[name] = run_row(name, Path(home))
            saved.write_text(json.dumps(list(results.values()), indent=2))
    ordered = [results[name] for name in ROWS if name in results]
    Path(args.out).write_text(table(ordered))
    print(table(ordered))


if __name__ == "__main__":
    main()
