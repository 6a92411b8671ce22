"""Write the probe corpus: a second test of long-range memory, independent of make_demo.py.

    python corpora/make_probe.py --out PATH [--seed S] [--sentences N]

Two kinds of dependent sentence, each with a middle of 6 to 24 tokens that is drawn alike
for both of its classes and holds no word that tells them apart:

- tense: "<time phrase>, <middle>, <subject> <verb> ...": a coming time ("Tomorrow", "In a
  few weeks", ...) takes the future form ("will", "won't"), a gone one ("The other day",
  "Long ago", ...) the past form ("went", "didn't", ...) of the same pair;
- number: "<subject> <middle> <verb> ...": "The old key near the boats is ...", "The old
  keys near the boat are ...": the middle's own nouns are singular or plural at random, so
  only the subject tells.

Some 40% of the sentences are all lowercase, the others begin with a capital; about a fifth
are plain sentences without a dependency. `pairs(seed, n)` gives (prompt ending right
before the verb, right verb, wrong verb) for held-out tests. Standard library only; the
same seed always gives the same text.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass
from pathlib import Path

MIN_MIDDLE, MAX_MIDDLE = 6, 24  # tokens of the middle
KIND_SHARES = (("tense", 0.5), ("number", 0.3))  # the rest are plain sentences
LOWERCASE_SHARE = 0.4

FUTURE_OPENERS = (
    "Tomorrow",
    "Next spring",
    "In a few weeks",
    "One day soon",
    "Later this year",
    "The day after tomorrow",
    "Before long",
    "Next weekend",
    "In the coming months",
)
PAST_OPENERS = (
    "The other day",
    "Long ago",
    "A few weeks back",
    "Earlier this year",
    "Not long ago",
    "The summer before last",
    "Decades ago",
    "The previous weekend",
    "In my childhood",
)
SUBJECTS = ("we", "they", "she", "he", "you", "my cousins", "the twins", "our neighbours")

# (future form, past form, endings that fit both); the first word of each form is the verb
# a model has to choose
TENSE_PAIRS = (
    ("will go", "went", ("to the coast", "fishing on the lake", "back to the farm",
                         "up into the hills")),
    ("will see", "saw", ("a heron by the pond", "the new bridge", "an old film at the club",
                         "the lights of the harbour")),
    ("will buy", "bought", ("a tent", "a second-hand boat", "fresh eggs from the farm",
                            "a map of the valley")),
    ("won't", "didn't", ("paint the fence", "wait for the ferry", "sell the cottage",
                         "answer the letter")),
    ("will meet", "met", ("the mayor", "our old teacher", "the new vet", "a famous singer")),
    ("will build", "built", ("a shed by the orchard", "a raft", "a wall of stone",
                             "a little bridge")),
)  # fmt: skip

# (singular verb, plural verb, endings that fit both)
NUMBER_PAIRS = (
    ("is", "are", ("rusty", "very old", "too heavy to lift", "in the shed")),
    ("was", "were", ("painted red", "found in the river", "lost for a while", "quite cheap")),
    ("has", "have", ("a crack", "no handle", "a brass lock", "a strange smell")),
    ("looks", "look", ("very grand", "tired", "lovely in the rain", "a bit crooked")),
    ("needs", "need", ("a good clean", "new paint", "fixing", "a closer look")),
    ("seems", "seem", ("too small", "out of place", "quite new", "older than the farm")),
)

NOUNS = (  # (singular, plural)
    ("key", "keys"), ("letter", "letters"), ("painting", "paintings"), ("bridge", "bridges"),
    ("boat", "boats"), ("lamp", "lamps"), ("gate", "gates"), ("window", "windows"),
    ("box", "boxes"), ("bench", "benches"), ("barn", "barns"), ("tower", "towers"),
    ("mill", "mills"), ("fence", "fences"), ("cottage", "cottages"), ("well", "wells"),
)  # fmt: skip
ADJECTIVES = ("old", "red", "narrow", "quiet", "broken", "tall", "wooden", "little", "green",
              "muddy", "stone", "distant")  # fmt: skip
DETERMINERS = ("the", "our", "my", "her")
MIDDLE_DETERMINERS = {"singular": ("the", "a", "our", "that"), "plural": ("the", "some", "two",
                                                                          "those")}  # fmt: skip
# places only: no word of a time phrase ("next to") and no preposition of time ("after",
# "before", "during", "since", "past")
PREPOSITIONS = ("near", "by", "behind", "beside", "under", "above", "along", "across from",
                "alongside", "beyond", "opposite", "in front of", "on the far side of", "with",
                "of", "at the end of", "close to")  # fmt: skip

PLAIN_SUBJECTS = ("My aunt", "The ferryman", "Our vet", "The baker", "Old Tom", "The miller")
PLAIN_VERBS = ("mends", "paints", "sells", "keeps", "feeds", "counts", "locks", "cleans")
PLAIN_QUESTIONS = ("Which way to the {}?", "Who owns the {}?", "Why does the {} creak?")

TOKEN = re.compile(r"<unk>|\d+(?:[.,:]\d+)+|\w+(?:['’-]\w+)*|\.\.\.|\S")  # as `--split words`


@dataclass(frozen=True)
class Sentence:
    """One generated line; the dependency fields are empty for plain sentences."""

    text: str
    kind: str = ""  # "tense" or "number"
    cue: str = ""  # the time phrase or the subject: what decides the verb
    middle: str = ""
    prompt: str = ""  # the text right up to the verb
    verb: str = ""
    wrong: str = ""


def tokens(text: str) -> list[str]:
    """Words and punctuation marks, split as wordlstm's default tokenizer splits them."""
    return TOKEN.findall(text)


def generate(seed: int, n: int) -> list[Sentence]:
    """`n` sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(n)]


def pairs(seed: int, n: int) -> list[tuple[str, str, str]]:
    """(prompt ending right before the verb, right verb, wrong verb) for the dependent ones
    of `generate(seed, n)`."""
    return [(s.prompt, s.verb, s.wrong) for s in generate(seed, n) if s.verb]


def _sentence(rng: random.Random) -> Sentence:
    draw = rng.random()
    for kind, share in KIND_SHARES:
        if draw < share:
            sentence = _tense(rng) if kind == "tense" else _number(rng)
            break
        draw -= share
    else:
        sentence = _plain(rng)
    return _cased(sentence, lower=rng.random() < LOWERCASE_SHARE)


def _tense(rng: random.Random) -> Sentence:
    future = rng.random() < 0.5
    cue = rng.choice(FUTURE_OPENERS if future else PAST_OPENERS)
    will, did, endings = rng.choice(TENSE_PAIRS)
    right, wrong = (will, did) if future else (did, will)
    middle = _middle(rng)
    prompt = f"{cue}, {middle}, {rng.choice(SUBJECTS)}"
    text = f"{prompt} {right} {rng.choice(endings)}."
    return Sentence(text, "tense", cue, middle, prompt, right.split()[0], wrong.split()[0])


def _number(rng: random.Random) -> Sentence:
    plural = rng.random() < 0.5
    one, many = rng.choice(NOUNS)
    cue = f"{rng.choice(DETERMINERS)} {rng.choice(ADJECTIVES)} {many if plural else one}"
    singular_verb, plural_verb, endings = rng.choice(NUMBER_PAIRS)
    right, wrong = (plural_verb, singular_verb) if plural else (singular_verb, plural_verb)
    middle = _middle(rng)
    prompt = f"{cue} {middle}"
    return Sentence(f"{prompt} {right} {rng.choice(endings)}.", "number", cue, middle, prompt,
                    right, wrong)  # fmt: skip


def _middle(rng: random.Random) -> str:
    """Places such as "near the old mills at the end of a muddy lane": MIN_MIDDLE to
    MAX_MIDDLE tokens (a length drawn evenly), each noun singular or plural at random."""
    length = rng.randint(MIN_MIDDLE, MAX_MIDDLE)
    while True:
        phrases: list[str] = []
        size = 0
        while size < length:
            phrase = _place(rng)
            phrases.append(phrase)
            size += len(tokens(phrase))
        if size == length:
            return " ".join(phrases)


def _place(rng: random.Random) -> str:
    number = rng.choice(("singular", "plural"))
    noun = rng.choice(NOUNS)[number == "plural"]
    adjective = f"{rng.choice(ADJECTIVES)} " if rng.random() < 0.5 else ""
    determiner = rng.choice(MIDDLE_DETERMINERS[number])
    if determiner == "a" and adjective[:1] in ("a", "e", "i", "o", "u"):
        determiner = "an"
    return f"{rng.choice(PREPOSITIONS)} {determiner} {adjective}{noun}"


def _plain(rng: random.Random) -> Sentence:
    one, _ = rng.choice(NOUNS)
    if rng.random() < 0.3:
        return Sentence(rng.choice(PLAIN_QUESTIONS).format(one))
    return Sentence(f"{rng.choice(PLAIN_SUBJECTS)} {rng.choice(PLAIN_VERBS)} the "
                    f"{rng.choice(ADJECTIVES)} {one} {_place(rng)}.")  # fmt: skip


def _cased(s: Sentence, lower: bool) -> Sentence:
    """The sentence all lowercase, or beginning with a capital (its other words as written)."""

    def case(text: str) -> str:
        return text.lower() if lower else text[:1].upper() + text[1:]

    return Sentence(case(s.text), s.kind, case(s.cue) if s.cue else "", s.middle,
                    case(s.prompt) if s.prompt else "", s.verb, s.wrong)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=8_000)
    args = parser.parse_args()
    sentences = generate(args.seed, args.sentences)
    args.out.write_text("".join(s.text + "\n" for s in sentences), encoding="utf-8")
    words = sum(len(tokens(s.text)) + 1 for s in sentences)
    print(f"wrote {len(sentences)} sentences, {words} tokens with end-of-line, to {args.out}")


if __name__ == "__main__":
    main()
