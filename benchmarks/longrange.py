"""Long-range learning of `wordlstm train` on two generators' corpora, seed by seed.

    python benchmarks/longrange.py [--corpora demo,probe] [--seeds 1111,1,2,3,4,5]
        [--max-time 180] [--extra "--lr-floor 0.1"] [--held-out 1000] [--out FILE]

For each corpus and seed it runs the real command, `wordlstm train CORPUS --max-time T
--seed S --model NAME --json EXTRA`, in a private store, then asks the saved model, for
held-out sentences (seed HELD_OUT_SEED of the generator, whose prompts are not in the
training text), whether the right verb is more likely than the wrong one after the prompt.
The demo corpus is corpora/demo.txt; the probe and holdout corpora are written by
corpora/make_probe.py and make_holdout.py (seed 0) for the run. Runs go one after another,
never two at once; measure on a quiet machine, since --max-time makes the epochs a run gets
depend on its speed.

Rows accumulate in a JSON file beside the table, keyed by flags, corpus and seed, so that
several recipes (different --extra) are measured one after another and shown side by side;
a row is replaced when measured again.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this copy of wordlstm, as `python -m wordlstm` here

from wordlstm import predict  # noqa: E402
from wordlstm.backend import to_host  # noqa: E402
from wordlstm.checkpoint import load_model  # noqa: E402

HELD_OUT_SEED = 4242  # the generators' training text is their seed 0
TRAINING_SENTENCES = {"demo": 10_000, "probe": 8_000, "holdout": 5_000}  # demo.txt: 10,000
# holdout only checks the defaults that demo and probe chose (corpora/make_holdout.py)
GENERATORS = {"demo": "make_demo.py", "probe": "make_probe.py", "holdout": "make_holdout.py"}
PASS = 0.97  # the share of right verbs the issue asks of every seed
BATCH = 256  # prompts read side by side


@dataclass
class Row:
    """One training run and what its saved model got right."""

    flags: str  # the --extra flags, "" for the defaults
    corpus: str
    seed: int
    max_time: float
    accuracy: float  # share of held-out pairs with the right verb more likely
    by_kind: dict[str, float]  # the same share for each kind of dependency, if several
    pairs: int
    epochs: int
    saved_epoch: int  # the epoch of the saved weights
    last_lr: float  # the learning rate of the last epoch: a collapse shows here
    valid_ppl: float
    seconds: float
    command: str
    date: str


@functools.cache
def generator(corpus: str) -> ModuleType:
    """The corpus's generator module, loaded from corpora/."""
    name = GENERATORS[corpus].removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, ROOT / "corpora" / GENERATORS[corpus])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def training_text(corpus: str, folder: Path) -> Path:
    """The corpus's training file: demo.txt, or the generator's text written into `folder`."""
    if corpus == "demo":
        return ROOT / "corpora" / "demo.txt"
    path = folder / f"{corpus}.txt"
    if not path.exists():
        sentences = generator(corpus).generate(0, TRAINING_SENTENCES[corpus])
        path.write_text("".join(s.text + "\n" for s in sentences), encoding="utf-8")
    return path


def held_out(corpus: str, n: int) -> list[tuple[str, str, str, str]]:
    """`n` (prompt, right verb, wrong verb, kind of dependency) whose prompts the training
    text lacks; the kind is "" for generators of one kind."""
    module = generator(corpus)
    seen = {prompt for prompt, _, _ in module.pairs(0, TRAINING_SENTENCES[corpus])}
    fresh = [
        (s.prompt, s.verb, s.wrong, getattr(s, "kind", ""))
        for s in module.generate(HELD_OUT_SEED, 2 * n)
        if s.verb and s.prompt not in seen
    ]
    return fresh[:n]


def right_shares(model: str, pairs: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """The share of `pairs` for which the model (a store name or folder) gives the right verb
    a higher probability than the wrong one right after the prompt: under "" for all pairs,
    and under each kind's name for a generator of several kinds."""
    loaded = load_model(model)
    tok = loaded.tokenizer
    right: dict[str, list[bool]] = {"": []}
    for start in range(0, len(pairs), BATCH):
        batch = pairs[start : start + BATCH]
        reading = predict.read_lines(
            loaded.model, [tok.encode(p[0]) for p in batch], tok.eos_id, distributions=True
        )
        log_probs = np.asarray(to_host(reading.next_log_probs))
        for row, (_, verb, wrong, kind) in zip(log_probs, batch, strict=True):
            ok = bool(row[tok.token_to_id(verb)] > row[tok.token_to_id(wrong)])
            right[""].append(ok)
            if kind:
                right.setdefault(kind, []).append(ok)
    return {kind: sum(oks) / len(oks) for kind, oks in right.items()}


def train_and_measure(
    corpus: str, seed: int, max_time: float, flags: str, pairs: list, folder: Path
) -> Row:
    """Trains with the CLI into a private store in `folder` and measures the saved model."""
    text = training_text(corpus, folder)
    name = f"{corpus}-{seed}"
    args = ["train", str(text), "--max-time", f"{max_time:g}", "--seed", str(seed),
            "--model", name, *shlex.split(flags)]  # fmt: skip
    home = folder / "store"
    env = dict(os.environ, WORDLSTM_HOME=str(home), NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "wordlstm", *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"wordlstm {shlex.join(args)} failed:\n{proc.stderr}")
    summary = json.loads(proc.stdout.splitlines()[-1])
    config = json.loads((Path(summary["path"]) / "config.json").read_text())
    shown = ["corpora/demo.txt" if corpus == "demo" else f"{corpus}.txt", *args[2:]]
    shares = right_shares(summary["path"], pairs)
    return Row(
        flags=flags,
        corpus=corpus,
        seed=seed,
        max_time=max_time,
        accuracy=shares.pop(""),
        by_kind=shares,
        pairs=len(pairs),
        epochs=summary["epochs"],
        saved_epoch=config["metrics"]["epoch"],
        last_lr=config["history"][-1]["lr"],
        valid_ppl=summary["valid_ppl"],
        seconds=summary["seconds"],
        command=f"wordlstm train {shlex.join(shown)}",
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def replaced(rows: list[Row], row: Row) -> list[Row]:
    """`rows` with `row` in the place of an earlier run of its flags, corpus, seed and
    budget, or at the end."""

    def key(r: Row) -> tuple:
        return r.flags, r.corpus, r.seed, r.max_time

    for i, r in enumerate(rows):
        if key(r) == key(row):
            return [*rows[:i], row, *rows[i + 1 :]]
    return [*rows, row]


def table(rows: list[Row]) -> str:
    """benchmarks/longrange.md: a summary per recipe and corpus, then every run."""
    lines = [
        "# Long-range learning: right verbs on held-out sentences, seed by seed",
        "",
        "Measured by `python benchmarks/longrange.py` (see its docstring). A held-out pair is "
        "right when the saved model gives the right verb a higher probability than the wrong "
        f"one after the prompt; held-out sentences are the generator's seed {HELD_OUT_SEED}, "
        "minus prompts of the training text. `probe.txt` is "
        "`python corpora/make_probe.py --out probe.txt`, `holdout.txt` "
        "`python corpora/make_holdout.py --out holdout.txt`; holdout never chose a default.",
        "",
        f"| flags | corpus | max time | seeds | lowest | median | seeds ≥ {PASS:.0%} |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.flags, r.corpus, r.max_time), []).append(r)
    for (flags, corpus, max_time), runs in groups.items():
        shares = [r.accuracy for r in runs]
        lines.append(
            f"| `{flags or '(defaults)'}` | {corpus} | {max_time:g} s | {len(runs)} | "
            f"{min(shares):.1%} | {statistics.median(shares):.1%} | "
            f"{sum(s >= PASS for s in shares)} of {len(runs)} |"
        )
    lines += [
        "",
        "| flags | corpus | seed | right verbs | by kind | pairs | epochs | saved epoch | last lr "
        "| valid ppl | seconds | command | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.flags or '(defaults)'}` | {r.corpus} | {r.seed} | **{r.accuracy:.1%}** | "
            f"{kinds(r.by_kind)} | {r.pairs} | {r.epochs} | {r.saved_epoch} | {r.last_lr:.3g} | "
            f"{r.valid_ppl:.3f} "
            f"| {r.seconds:.0f} | `{r.command}` | {r.date} |"
        )
    return "\n".join(lines) + "\n"


def kinds(by_kind: dict[str, float]) -> str:
    """ "tense 99.0%, number 51.2%", or "" for a generator of one kind."""
    return ", ".join(f"{kind} {share:.1%}" for kind, share in by_kind.items())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpora", default="demo,probe")
    p.add_argument("--seeds", default="1111,1,2,3,4,5")
    p.add_argument("--max-time", type=float, default=180.0, help="seconds per training run")
    p.add_argument("--extra", default="", help="more train flags, e.g. '--lr-floor 0.1'")
    p.add_argument("--held-out", type=int, default=1000, help="held-out pairs per corpus")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("longrange.md"))
    p.add_argument("--json-out", type=Path, help="the rows so far [default: --out as .json]")
    p.add_argument("--keep", type=Path, help="copy each saved model into this folder")
    args = p.parse_args(argv)
    saved = args.json_out or args.out.with_suffix(".json")
    rows = (
        [Row(**{"by_kind": {}} | r) for r in json.loads(saved.read_text())]
        if saved.exists()
        else []
    )
    with tempfile.TemporaryDirectory(prefix="wordlstm-longrange-") as folder:
        for corpus in args.corpora.split(","):
            pairs = held_out(corpus, args.held_out)
            for seed in (int(s) for s in args.seeds.split(",")):
                row = train_and_measure(
                    corpus, seed, args.max_time, args.extra, pairs, Path(folder)
                )
                rows = replaced(rows, row)
                if args.keep:
                    name = f"{corpus}-{seed}"
                    shutil.copytree(Path(folder) / "store" / name, args.keep / name,
                                    dirs_exist_ok=True)  # fmt: skip
                saved.write_text(json.dumps([asdict(r) for r in rows], indent=2))
                print(f"{row.corpus} seed {row.seed} {row.flags}: {row.accuracy:.1%} right "
                      f"{kinds(row.by_kind)}, {row.epochs} epochs, {row.seconds:.0f} s",
                      file=sys.stderr)  # fmt: skip
                args.out.write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
