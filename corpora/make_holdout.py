"""Write the held-out corpus: a third long-range test, never used to choose a default.

    python corpora/make_holdout.py --out PATH [--seed S] [--sentences N]

Every line is "<time phrase>, <middle of 10 to 14 words>, i <verb> <object>." in lowercase:
a time phrase of now ("this month", "tonight", ...) takes "need", one of the past ("last
week", "back then", ...) takes "had", and the middle, drawn alike for both, holds no word
of time or tense. make_demo.py and make_probe.py choose wordlstm's defaults; this one only
checks them, so that a claim of long-range learning rests on text no default was fitted to.
`pairs(seed, n)` gives (prompt ending right before the verb, right verb, wrong verb).
Standard library only; the same seed always gives the same text.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

MIN_MIDDLE, MAX_MIDDLE = 10, 14  # words of the middle

NOW = ("this month", "tonight", "this week", "right now", "these days", "today", "this year")
PAST = ("last week", "back then", "last month", "that winter", "years ago", "last year",
        "once")  # fmt: skip
VERBS = {"now": "need", "past": "had"}
OBJECTS = ("a loan", "more time", "some help", "a second job", "a cheaper flat", "a car",
           "a long rest", "new shoes", "a good lawyer", "extra shifts")  # fmt: skip

# words of the middle: "with the rent and the boiler and my brother in the hospital"
OPENERS = ("with", "what with", "because of", "thanks to", "given")
NOUNS = ("rent", "boiler", "bank", "landlord", "car", "roof", "kids", "garden", "bills",
         "dentist", "school fees", "insurance", "taxes", "heating", "phone", "dog",
         "van")  # fmt: skip
OWNERS = ("the", "my", "our", "the old", "my sister's", "the new", "our neighbour's")
LINKS = ("and", "and", "plus", "on top of")
PLACES = ("in the hospital", "at the garage", "in the city", "on the farm", "at my mother's")


@dataclass(frozen=True)
class Sentence:
    """One generated line with what decides its verb."""

    text: str
    cue: str
    middle: str
    prompt: str  # the text right up to the verb
    verb: str
    wrong: str


def generate(seed: int, n: int) -> list[Sentence]:
    """`n` sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(n)]


def pairs(seed: int, n: int) -> list[tuple[str, str, str]]:
    """(prompt ending right before the verb, right verb, wrong verb) of `generate(seed, n)`."""
    return [(s.prompt, s.verb, s.wrong) for s in generate(seed, n)]


def _sentence(rng: random.Random) -> Sentence:
    when = rng.choice(("now", "past"))
    cue = rng.choice(NOW if when == "now" else PAST)
    verb = VERBS[when]
    wrong = VERBS["past" if when == "now" else "now"]
    middle = _middle(rng)
    prompt = f"{cue}, {middle}, i"
    return Sentence(f"{prompt} {verb} {rng.choice(OBJECTS)}.", cue, middle, prompt, verb, wrong)


def _middle(rng: random.Random) -> str:
    """MIN_MIDDLE to MAX_MIDDLE words (a length drawn evenly) of tense-free noun phrases."""
    length = rng.randint(MIN_MIDDLE, MAX_MIDDLE)
    while True:
        words = rng.choice(OPENERS).split() + _owned(rng)
        while len(words) < length:
            if rng.random() < 0.15:
                words += rng.choice(PLACES).split()
            else:
                words += rng.choice(LINKS).split() + _owned(rng)
        if len(words) == length:
            return " ".join(words)


def _owned(rng: random.Random) -> list[str]:
    return rng.choice(OWNERS).split() + rng.choice(NOUNS).split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=5000)
    args = parser.parse_args()
    text = "".join(s.text + "\n" for s in generate(args.seed, args.sentences))
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
