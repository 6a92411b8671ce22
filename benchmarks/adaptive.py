"""The adaptive softmax against the full one and against PyTorch's: speed and quality.

    python benchmarks/adaptive.py [--rounds 5] [--steps 20] [--vocab 100000]
                                  [--cutoffs 2000,10000,50000] [--sides ...]
    python benchmarks/adaptive.py --quality [--epochs 10] [--max-time 300]
                                  [--quality-cutoffs 2000,10000] [--extra=FLAGS]

Speed: the training step of benchmarks/speed.py at config S (2x200, batch 20, bptt 35,
untied, no dropout; forward, cross-entropy, backward, clip 0.25, SGD) with a vocabulary of
--vocab words, on a synthetic corpus of Zipfian frequencies in which every word occurs
(`zipf_corpus`). Four sides: wordlstm with the full and with the adaptive softmax (cut-offs
--cutoffs, div 4), PyTorch's nn.LSTM with nn.AdaptiveLogSoftmaxWithLoss (the same cut-offs,
div_value=4, head_bias=True) and with nn.Linear's full softmax. As in speed.py each
measurement runs in a fresh worker process, rerun when other processes load the machine,
the sides alternate round by round, every figure is a median, and the ratios are taken
round by round. The full softmax's sides take half the steps: each of theirs is ~10x longer.

Quality (--quality; long, about half an hour): the WikiText-2 split of benchmarks/quality.py
(`wordlstm train wikitext-2/test.txt --valid wikitext-2/valid.txt --split whitespace
--vocab-size 0`, the default recipe), trained with the full and with the adaptive softmax
(--quality-cutoffs, div 4; by default a head of the 2,000 commonest of its 14,143 words and
clusters of 8,000 and 4,143) for the same --epochs and for the same --max-time, each then
measured by `wordlstm eval wikitext-2/valid.txt --cache-size 0` (the model alone). --extra
adds flags to every `train` (a tiny model for a quick check: --extra="--hidden 16 ...").

Each mode writes its section of --out (adaptive.md) with its command and date, keeping the
other's, and the figures in the JSON file beside it.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import quality
import speed

CONFIG = "S"
SIDES = {  # name: (library, softmax), as the table shows them
    "numpy-full": ("wordlstm", "full"),
    "numpy-adaptive": ("wordlstm", "adaptive"),
    "torch-adaptive": ("PyTorch", "adaptive"),
    "torch-full": ("PyTorch", "full"),
}
RATIOS = {  # name: (side, over side, the target or None)
    "wordlstm adaptive / wordlstm full": ("numpy-adaptive", "numpy-full", 10.0),
    "wordlstm adaptive / PyTorch adaptive": ("numpy-adaptive", "torch-adaptive", 1.3),
    "PyTorch adaptive / PyTorch full": ("torch-adaptive", "torch-full", None),
}
QUALITY_SPLIT, QUALITY_TOLERANCE = "wt2", 1.03  # adaptive's perplexity within 3% of full's
QUALITY_EVAL = ("--cache-size", "0", "--no-keyboard")


# ---------------------------------------------------------------- workers (one per process)


def zipf_corpus(vocab: int) -> np.ndarray:
    """A shuffled synthetic corpus in which the word of id r occurs ceil(vocab / (r + 1))
    times: Zipfian frequencies with every word present at least once, ids ranked by
    frequency as the tokenizer numbers them (the adaptive softmax's clusters rely on it)."""
    counts = -(-vocab // np.arange(1, vocab + 1))
    corpus = np.repeat(np.arange(vocab, dtype=np.int64), counts)
    np.random.default_rng(1234).shuffle(corpus)
    return corpus


def zipf_tokens(vocab: int, shape: tuple[int, int]) -> np.ndarray:
    """The start of `zipf_corpus` (repeated if too short) cut into streams as training cuts
    its text: (rows, streams), each column a stretch of the corpus."""
    rows, streams = shape
    ids = np.resize(zipf_corpus(vocab), rows * streams)
    return np.ascontiguousarray(ids.reshape(streams, rows).T)


def train_times(side: str, steps: int, vocab: int, cutoffs: tuple[int, ...]) -> list[float]:
    """Seconds of each of a side's training steps after the warm-up (speed.py's step)."""
    library, softmax = SIDES[side]
    words = speed.Vocab(vocab, cutoffs if softmax == "adaptive" else None, zipf_tokens)
    train = speed.numpy_train if library == "wordlstm" else speed.torch_train
    return train(CONFIG, steps, words)


def worker(side: str, steps: int, vocab: int, cutoffs: tuple[int, ...]) -> None:
    speed.report(
        lambda: train_times(side, steps, vocab, cutoffs), wordlstm=SIDES[side][0] == "wordlstm"
    )


# ---------------------------------------------------------------- speed


def cluster_shares(vocab: int, cutoffs: tuple[int, ...]) -> list[float]:
    """The share of the corpus's tokens in the head and in each cluster."""
    counts = -(-vocab // np.arange(1, vocab + 1))
    edges = [0, *cutoffs, vocab]
    return [counts[a:b].sum() / counts.sum() for a, b in zip(edges, edges[1:], strict=False)]


def ratios(tok_s: dict[str, list[float]]) -> dict[str, list[float]]:
    """Each of RATIOS whose sides were measured, round by round."""
    return {
        name: [a / b for a, b in zip(tok_s[side], tok_s[over], strict=True)]
        for name, (side, over, _) in RATIOS.items()
        if side in tok_s and over in tok_s
    }


def measure_speed(args, sides: list[str]) -> dict:
    """Rounds of every side in turn; tokens/s per round, peak RSS and the machine's load."""
    _, _, _, batch, bptt = speed.CONFIGS[CONFIG]
    cutoffs = ",".join(map(str, args.cutoffs))
    tok_s: dict[str, list[float]] = {side: [] for side in sides}
    rss, load = {}, []
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            steps = args.steps if SIDES[side][1] == "adaptive" else max(1, args.steps // 2)
            cmd = [__file__, "--worker", side, "--steps", str(steps), "--vocab", str(args.vocab)]
            result = speed.measure([*cmd, "--cutoffs", cutoffs])
            load.append(result["foreign_cores"])
            tok_s[side].append(speed.tokens_per_sec(result, batch * bptt))
            rss[side] = result["peak_rss_mb"]
            sys.stderr.write(
                f"round {r + 1}, {side}: {tok_s[side][-1]:,.0f} tok/s (others kept "
                f"{result['foreign_cores']:.2f} cores busy; try {result['tries']})\n"
            )
    return {
        "vocab": args.vocab,
        "cutoffs": list(args.cutoffs),
        "cluster_shares": cluster_shares(args.vocab, args.cutoffs),
        "rounds": args.rounds,
        "steps": args.steps,
        "tok_s": tok_s,
        "peak_rss_mb": rss,
        "ratios": ratios(tok_s),
        "foreign_cores": load,
    }


def speed_section(s: dict) -> list[str]:
    layers, hidden, _, batch, bptt = speed.CONFIGS[CONFIG]
    shares = ", ".join(
        f"{name} {share:.1%}"
        for name, share in zip(
            ["head", *(f"cluster {i + 1}" for i in range(len(s["cutoffs"])))],
            s["cluster_shares"],
            strict=True,
        )
    )
    lines = [
        "## Speed: training tokens/s",
        "",
        f"Measured by `{s['command']}` on {s['cores']} cores ({s['date']}). Training step "
        f"of benchmarks/speed.py at {layers}x{hidden}, batch {batch}, bptt {bptt}, untied, "
        f"V = {s['vocab']:,} on a Zipfian synthetic corpus with every word present "
        f"(tokens by cluster: {shares}); cut-offs {', '.join(map(str, s['cutoffs']))}, div 4. "
        f"Medians of {s['rounds']} rounds, each side in a fresh process, the sides alternating.",
        "",
        "| side | tok/s (median) | rounds | peak RSS |",
        "|---|---|---|---|",
    ]
    for side, values in s["tok_s"].items():
        library, softmax = SIDES[side]
        lines.append(
            f"| {library}, {softmax} softmax | **{statistics.median(values):,.0f}** | "
            f"{', '.join(f'{v:,.0f}' for v in values)} | {s['peak_rss_mb'][side]:.0f} MB |"
        )
    lines += [
        "",
        "| ratio (median of per-round ratios) | value | rounds | target |",
        "|---|---|---|---|",
    ]
    for name, values in s["ratios"].items():
        target = RATIOS[name][2]
        lines.append(
            f"| {name} | **{statistics.median(values):.2f}x** | "
            f"{', '.join(f'{v:.2f}' for v in values)} | {f'>= {target:g}x' if target else ''} |"
        )
    load = s["foreign_cores"]
    lines += [
        "",
        f"Other processes kept a median of {statistics.median(load):.2f} cores busy during the "
        f"{len(load)} measurements (max {max(load):.2f}; each rerun, up to {speed.MAX_TRIES} "
        f"tries, above {speed.QUIET_CORES}).",
        "",
    ]
    return lines


# ---------------------------------------------------------------- quality


def measure_quality(args) -> dict:
    """Full and adaptive softmax on the split, for the same epochs and the same time."""
    cutoffs = ",".join(map(str, args.quality_cutoffs))
    adaptive = ["--softmax", "adaptive", "--cutoffs", cutoffs, "--div-value", "4"]
    budgets = {
        "epochs": ["--epochs", str(args.epochs)],
        "time": ["--max-time", f"{args.max_time:g}"],
    }
    runs = []
    with tempfile.TemporaryDirectory(prefix="wordlstm-adaptive-") as home:
        for budget, flags in budgets.items():
            for softmax, extra in (("full", []), ("adaptive", adaptive)):
                name = f"{QUALITY_SPLIT}-{softmax}-{budget}"
                row = quality.train_and_eval(
                    name,
                    QUALITY_SPLIT,
                    extra + flags + args.extra.split(),
                    Path(home),
                    QUALITY_EVAL,
                )
                runs.append({**row, "softmax": softmax, "budget": budget})
    return {"epochs": args.epochs, "max_time": args.max_time, "runs": runs}


def quality_section(q: dict) -> list[str]:
    train, valid, _, _ = quality.SPLITS[QUALITY_SPLIT]
    lines = [
        "## Quality: WikiText-2 perplexity",
        "",
        f"Measured by `{q['command']}` on {q['cores']} cores ({q['date']}); `$CORPORA` is "
        f"`../shared/corpora`. Each model evaluated by `wordlstm eval $CORPORA/{valid} "
        f"{' '.join(QUALITY_EVAL)}`.",
        "",
        "| softmax | budget | epochs | train s | perplexity | command |",
        "|---|---|---|---|---|---|",
    ]
    ppl = {}
    for r in q["runs"]:
        t, e = r["train"], r["eval"]
        ppl[(r["softmax"], r["budget"])] = e["perplexity"]
        budget = f"{q['epochs']} epochs" if r["budget"] == "epochs" else f"{q['max_time']:g} s"
        lines.append(
            f"| {r['softmax']} | {budget} | {t['epochs']} | {t['seconds']:.0f} | "
            f"**{e['perplexity']:.2f}** | `{r['command']}` |"
        )
    lines.append("")
    if ("adaptive", "epochs") in ppl and ("full", "epochs") in ppl:
        ratio = ppl[("adaptive", "epochs")] / ppl[("full", "epochs")]
        lines.append(
            f"Same epochs: adaptive / full perplexity **{ratio:.3f}** "
            f"(target <= {QUALITY_TOLERANCE})."
        )
    if ("adaptive", "time") in ppl and ("full", "time") in ppl:
        a, f = ppl[("adaptive", "time")], ppl[("full", "time")]
        lines.append(
            f"Same time: adaptive {a:.2f} against full {f:.2f}: "
            f"**{'better' if a < f else 'not better'}** (target: better)."
        )
    return [*lines, ""]


# ---------------------------------------------------------------- the orchestrator


def write(out: Path, results: dict) -> None:
    """adaptive.md from the results of both modes, and the JSON beside it."""
    lines = ["# The adaptive softmax: speed and quality", ""]
    if "speed" in results:
        lines += speed_section(results["speed"])
    if "quality" in results:
        lines += quality_section(results["quality"])
    out.write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))


def numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="timed steps of the adaptive sides")
    p.add_argument("--vocab", type=int, default=100_000)
    p.add_argument("--cutoffs", type=numbers, default=(2000, 10000, 50000))
    p.add_argument("--sides", default=",".join(SIDES), help="of " + ", ".join(SIDES))
    p.add_argument("--quality", action="store_true", help="measure perplexity, not speed")
    p.add_argument("--epochs", type=int, default=10, help="--quality: the same-epochs runs'")
    p.add_argument("--max-time", type=float, default=300, help="--quality: the same-time runs'")
    p.add_argument("--quality-cutoffs", type=numbers, default=(2000, 10000))
    p.add_argument("--extra", default="", help="--quality: flags added to every `train`")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("adaptive.md"))
    p.add_argument("--worker", metavar="SIDE", choices=SIDES)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.vocab, args.cutoffs)
        return
    json_out = args.out.with_suffix(".json")
    results = json.loads(json_out.read_text()) if json_out.exists() else {}
    if args.quality:
        key, figures = "quality", measure_quality(args)
    else:
        sides = args.sides.split(",")
        unknown = [side for side in sides if side not in SIDES]
        if unknown:
            p.error(f"--sides: unknown {', '.join(unknown)} (of {', '.join(SIDES)})")
        if not speed.torch_installed():
            sides = [side for side in sides if SIDES[side][0] != "PyTorch"]
            print("PyTorch is not installed: measuring wordlstm alone", file=sys.stderr)
        key, figures = "speed", measure_speed(args, sides)
    figures.update(
        command=shlex.join(["python", "benchmarks/adaptive.py", *sys.argv[1:]]),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cores=os.cpu_count(),
    )
    results[key] = figures
    write(args.out, results)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
