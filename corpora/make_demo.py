"""Write the demo corpus: English sentences where the verb after "I" depends on a time phrase.

    python corpora/make_demo.py [--seed S] [--sentences N] [--out PATH]

About 70% of the sentences read "<time phrase>, <middle>, I <verb> <object>.": a present
opener ("Today", "These days", ...) takes a present verb ("need", "am", ...), a past one
("Last year", "Back then", ...) the past verb of the same pair. The middle is drawn the same
way for both tenses and holds no verb and no time word, so only the time phrase, 8 to 20
tokens before the verb, tells which verb fits: a test of long-range memory. The rest are
plain sentences without "I", so completions of other prompts look sensible too.
Standard library only; the same seed always gives the same text.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass
from pathlib import Path

MIN_GAP, MAX_GAP = 8, 20  # tokens from the end of the time phrase to the verb
DEPENDENT_SHARE = 0.7

PRESENT_OPENERS = (
    "Today",
    "This week",
    "Right now",
    "These days",
    "At the moment",
    "This month",
    "This year",
    "Nowadays",
    "At present",
)
PAST_OPENERS = (
    "Last year",
    "Yesterday",
    "Two years ago",
    "Back then",
    "Last month",
    "Last week",
    "A few years ago",
    "In those days",
    "Last winter",
)

# (present verb, past verb, objects that fit both)
VERB_PAIRS = (
    (
        "need",
        "had",
        (
            "a loan",
            "a new car",
            "some help with the rent",
            "a second job",
            "a bigger flat",
            "a good lawyer",
            "a loan from the bank",
        ),
    ),
    (
        "am",
        "was",
        (
            "short of money",
            "worried about the rent",
            "ready to move",
            "tired of waiting",
            "afraid of the bank",
            "happy with the plan",
            "careful with every penny",
        ),
    ),
    (
        "have",
        "had",
        (
            "two jobs",
            "no savings",
            "a small flat near the river",
            "a lot of debt",
            "an old car",
            "three children",
            "little time for my friends",
        ),
    ),
    (
        "want",
        "wanted",
        (
            "a bigger house",
            "to move to the city",
            "to study again",
            "a quiet life",
            "to open a shop",
            "a dog",
            "to leave the country",
        ),
    ),
    (
        "can",
        "could",
        (
            "pay the bills on time",
            "help my parents",
            "not sleep at night",
            "save a little money",
            "buy a house",
            "take the bus to the city",
        ),
    ),
    (
        "work",
        "worked",
        (
            "at the bank",
            "two shifts a day",
            "from home",
            "in a small shop",
            "for my uncle",
            "late every night",
            "at the market on weekends",
        ),
    ),
)
TAILS = (
    "for my family",
    "like many people in our town",
    "more than anything",
    "for the first time",
    "with my sister",
)

# Middle clauses: a linking word and noun phrases, no verbs and no time words.
LINKS = (
    "due to",
    "because of",
    "after",
    "despite",
    "with",
    "given",
    "thanks to",
    "on top of",
    "in spite of",
    "apart from",
    "between",
)
NOUN_PHRASES = (
    "my current job situation",
    "family conditions",
    "the high rent",
    "the cost of food",
    "a long talk with my brother about money and the house",
    "the advice of my bank",
    "my old friends",
    "the noise in the street",
    "the prices in our small town",
    "my health",
    "the car repairs",
    "the loan from my uncle",
    "the bills on the kitchen table",
    "the help of my parents",
    "my bad knee",
    "the long shifts at the shop",
    "the care of my mother",
    "the cold weather",
    "a broken washing machine",
    "the letter from the landlord",
    "my little savings",
    "the school fees for my son",
    "the price of petrol",
    "a quiet evening with my wife",
    "the news from home",
    "the doctor and the tests",
    "the new baby",
    "my poor eyesight",
    "the rising bus fares",
    "the advice of an old friend",
    "the state of the roof",
    "the trouble with my landlord",
    "the broken heating in the flat",
)
PEOPLE = (
    "My sister",
    "My brother",
    "Our neighbour",
    "My mother",
    "The old man next door",
    "My friend Anna",
    "The new teacher",
    "My uncle",
)
PERSON_DOES = (
    "likes long walks by the river",
    "cooks fish on Sundays",
    "reads the paper every morning",
    "plays the piano in the evening",
    "keeps a small garden behind the house",
    "drives an old blue car",
    "lives near the station",
    "sings in the church choir",
    "knows every shop in the town",
    "writes long letters to the family",
)
PLACES = (
    "the bank",
    "the shop on the corner",
    "the market",
    "the library",
    "the station",
    "the bakery near our house",
    "the post office",
    "the old church",
)
PLACE_DOES = (
    "opens at nine",
    "closes early on Sundays",
    "is busy in the morning",
    "is quiet in the evening",
    "sells fresh bread and fish",
    "stands next to the river",
    "looks very old",
    "is a short walk from here",
)
QUESTIONS = (
    "Where is {}?",
    "How far is {} from here?",
    "What time does {} open?",
    "Is {} open on Sunday?",
)

TOKEN = re.compile(r"<unk>|\d+(?:[.,:]\d+)+|\w+(?:['’-]\w+)*|\.\.\.|\S")  # as `--split words`


@dataclass(frozen=True)
class Sentence:
    """One generated line; `verb` and `wrong` are empty for plain sentences."""

    text: str
    opener: str = ""
    middle: str = ""
    verb: str = ""
    wrong: str = ""

    @property
    def prompt(self) -> str:
        """The text up to and including "I", the context a model predicts the verb from."""
        return self.text[: self.text.rindex(" I ") + 2] if self.verb else ""


def tokens(text: str) -> list[str]:
    """Words and punctuation marks, split as wordlstm's default tokenizer splits them."""
    return TOKEN.findall(text)


def generate(seed: int, n: int) -> list[Sentence]:
    """`n` sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [_dependent(rng) if rng.random() < DEPENDENT_SHARE else _plain(rng) for _ in range(n)]


def pairs(seed: int, n: int) -> list[tuple[str, str, str]]:
    """(prompt up to "I", right verb, wrong verb) for the dependent ones of `generate(seed, n)`."""
    return [(s.prompt, s.verb, s.wrong) for s in generate(seed, n) if s.verb]


def _dependent(rng: random.Random) -> Sentence:
    present = rng.random() < 0.5
    opener = rng.choice(PRESENT_OPENERS if present else PAST_OPENERS)
    now, then, objects = rng.choice(VERB_PAIRS)
    verb, wrong = (now, then) if present else (then, now)
    while True:
        middle = _middle(rng)
        gap = len(tokens(middle)) + 4  # the commas around the middle, "I" and the verb
        if MIN_GAP <= gap <= MAX_GAP:
            break
    ending = rng.choice(objects)
    if rng.random() < 0.3:
        ending += " " + rng.choice(TAILS)
    text = f"{opener}, {middle}, I {verb} {ending}."
    return Sentence(text, opener, middle, verb, wrong)


def _middle(rng: random.Random) -> str:
    """One to three clauses such as "due to the high rent and my health"."""
    clauses = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        link = rng.choice(LINKS)
        phrases = rng.sample(NOUN_PHRASES, 2 if link == "between" else rng.choice((1, 1, 2)))
        clauses.append(f"{link} {' and '.join(phrases)}")
    return ", ".join(clauses)


def _plain(rng: random.Random) -> Sentence:
    kind = rng.random()
    if kind < 0.45:
        return Sentence(f"{rng.choice(PEOPLE)} {rng.choice(PERSON_DOES)}.")
    place = rng.choice(PLACES)
    if kind < 0.85:
        return Sentence(f"{place[0].upper()}{place[1:]} {rng.choice(PLACE_DOES)}.")
    return Sentence(rng.choice(QUESTIONS).format(place))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("demo.txt"))
    args = parser.parse_args()
    sentences = generate(args.seed, args.sentences)
    args.out.write_text("".join(s.text + "\n" for s in sentences), encoding="utf-8")
    words = sum(len(tokens(s.text)) + 1 for s in sentences)
    print(f"wrote {len(sentences)} sentences, {words} tokens with end-of-line, to {args.out}")


if __name__ == "__main__":
    main()
