"""Does `wordlstm explain --why` point at the time phrase? Measured on a trained model.

    python benchmarks/attribution.py MODEL [--held-out 400] [--out benchmarks/attribution.md]

MODEL is a model folder or store name, e.g. the README's demo model (`wordlstm train
corpora/demo.txt --max-time 180`). For held-out sentences of the demo generator (seed
HELD_OUT_SEED, prompts the training text lacks, as benchmarks/longrange.py takes them) the
target is log p(right verb) - log p(wrong verb) after the prompt "<time phrase>, <middle>,
I", attributed to the prompt's tokens as `explain --why RIGHT --against WRONG` does. The
table gives the share of sentences where

- the token with the largest absolute gradient x input lies inside the time phrase,
- the token whose occlusion (read as <unk>) drops the target most lies inside it,
- occluding the whole time phrase lowers the target, and where it flips or erases the
  preference (the target after it <= 0), over all sentences and by the phrase's tense.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this copy of wordlstm
sys.path.insert(0, str(ROOT / "benchmarks"))

from longrange import HELD_OUT_SEED, TRAINING_SENTENCES, generator  # noqa: E402

from wordlstm import explain  # noqa: E402
from wordlstm.checkpoint import Loaded, load_model  # noqa: E402


@dataclass
class Shares:
    """What attribution found over the sentences, as shares in [0, 1]."""

    sentences: int
    past: int  # sentences with a past time phrase
    right: float  # the right verb was preferred (the target > 0)
    top_gradient_in_phrase: float
    top_occlusion_in_phrase: float
    phrase_lowers: float  # occluding the phrase lowers the target
    phrase_flips: float  # ... and leaves it <= 0: the preference flipped or erased
    phrase_flips_past: float
    phrase_flips_present: float


def held_out_sentences(n: int) -> list:
    """`n` dependent sentences of the demo generator's held-out seed whose prompts the
    training text lacks."""
    demo = generator("demo")
    seen = {prompt for prompt, _, _ in demo.pairs(0, TRAINING_SENTENCES["demo"])}
    fresh = [s for s in demo.generate(HELD_OUT_SEED, 3 * n) if s.verb and s.prompt not in seen]
    return fresh[:n]


def measure(loaded: Loaded, sentences: list) -> Shares:
    """Attribution of log p(right) - log p(wrong) to each sentence's prompt."""
    past_openers = set(generator("demo").PAST_OPENERS)
    rows = []
    for s in sentences:
        k = len(loaded.tokenizer.encode(s.opener))  # the time phrase: the prompt's first k
        a = explain.attribute(loaded, s.prompt, s.verb, s.wrong, spans=[(0, k)])
        after = a.target - a.span_occlusion[0]
        rows.append(
            (
                s.opener in past_openers,
                a.target > 0,
                int(np.argmax(np.abs(a.gradient_x_input))) < k,
                int(np.argmax(a.occlusion)) < k,
                a.span_occlusion[0] > 0,
                after <= 0,
            )
        )
    r = np.array(rows, dtype=bool)
    past = r[:, 0]

    def share(column: np.ndarray) -> float:
        return float(column.mean()) if len(column) else float("nan")

    return Shares(
        sentences=len(r),
        past=int(past.sum()),
        right=share(r[:, 1]),
        top_gradient_in_phrase=share(r[:, 2]),
        top_occlusion_in_phrase=share(r[:, 3]),
        phrase_lowers=share(r[:, 4]),
        phrase_flips=share(r[:, 5]),
        phrase_flips_past=share(r[past, 5]),
        phrase_flips_present=share(r[~past, 5]),
    )


def report(model: str, s: Shares) -> str:
    """The shares as a markdown page."""
    rows = [
        ("right verb preferred", s.right),
        ("top token by absolute gradient x input in the time phrase", s.top_gradient_in_phrase),
        ("top occlusion token in the time phrase", s.top_occlusion_in_phrase),
        ("occluding the time phrase lowers the preference", s.phrase_lowers),
        ("... flips or erases it (all)", s.phrase_flips),
        (f"... flips or erases it (past phrases, {s.past})", s.phrase_flips_past),
        (
            f"... flips or erases it (present phrases, {s.sentences - s.past})",
            s.phrase_flips_present,
        ),
    ]
    table = "\n".join(f"| {name} | {100 * v:.1f}% |" for name, v in rows)
    day = datetime.date.today().isoformat()
    return (
        "# Attribution: does `explain --why` point at the time phrase?\n\n"
        f"Model `{model}`, {s.sentences} held-out demo sentences (generator seed "
        f"{HELD_OUT_SEED}), target log p(right verb) - log p(wrong verb); measured {day} by "
        "`python benchmarks/attribution.py`.\n\n"
        f"| measure | share |\n|---|---|\n{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model folder or store name")
    parser.add_argument("--held-out", type=int, default=400, help="sentences to attribute")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "attribution.md"))
    args = parser.parse_args()
    shares = measure(load_model(args.model), held_out_sentences(args.held_out))
    Path(args.out).write_text(report(args.model, shares), encoding="utf-8")
    print(report(args.model, shares))


if __name__ == "__main__":
    main()
