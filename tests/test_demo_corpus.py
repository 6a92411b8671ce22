"""The demo corpus generator: deterministic, and the verb depends on the time phrase alone."""

import importlib.util
import sys
from pathlib import Path

import pytest

from wordlstm.tokenizer import Tokenizer

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
spec = importlib.util.spec_from_file_location("make_demo", CORPORA / "make_demo.py")
make_demo = sys.modules["make_demo"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_demo)

PRESENT = {"need", "am", "have", "want", "can", "work"}
PAST = {"had", "was", "wanted", "could", "worked"}
TENSE_CUES = (
    PRESENT
    | PAST
    | {
        "is",
        "are",
        "were",
        "has",
        "did",
        "does",
        "will",
        "would",
        "shall",
        "should",
        "today",
        "yesterday",
        "now",
        "nowadays",
        "ago",
        "last",
        "then",
        "back",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "moment",
        "present",
    }
)


@pytest.fixture(scope="module")
def sentences():
    return make_demo.generate(seed=11, n=3000)


@pytest.fixture(scope="module")
def tokenizer(sentences):
    return Tokenizer.train([s.text for s in sentences])


def test_same_seed_same_text_other_seed_other_text():
    assert make_demo.generate(5, 300) == make_demo.generate(5, 300)
    assert make_demo.generate(5, 300) != make_demo.generate(6, 300)


def test_committed_demo_txt_is_the_default_output():
    expected = "".join(s.text + "\n" for s in make_demo.generate(0, 10_000))
    assert (CORPORA / "demo.txt").read_text(encoding="utf-8") == expected


def test_about_seventy_percent_depend_on_the_time_phrase(sentences):
    dependent = [s for s in sentences if s.verb]
    assert 0.65 < len(dependent) / len(sentences) < 0.75
    assert all(" I " not in s.text for s in sentences if not s.verb)


def test_verb_matches_the_tense_of_the_opener(sentences):
    pairs = {(now, then) for now, then, _ in make_demo.VERB_PAIRS}
    for s in sentences:
        if not s.verb:
            continue
        present = s.opener in make_demo.PRESENT_OPENERS
        assert present != (s.opener in make_demo.PAST_OPENERS)
        assert s.verb in (PRESENT if present else PAST)
        assert ((s.verb, s.wrong) if present else (s.wrong, s.verb)) in pairs
        assert s.text.startswith(f"{s.opener}, {s.middle}, I {s.verb} ")


def test_time_phrase_is_8_to_20_tokens_before_the_verb(sentences, tokenizer):
    gaps = set()
    for s in sentences:
        if not s.verb:
            continue
        ids = tokenizer.encode(s.text)
        verb_at = tokenizer.encode(s.prompt).size
        assert ids[verb_at] == tokenizer.token_to_id(s.verb)
        gap = verb_at - (tokenizer.encode(s.opener).size - 1)
        assert 8 <= gap <= 20
        gaps.add(gap)
    assert gaps == set(range(8, 21))  # the whole range is used


def test_middles_carry_no_tense_cue(sentences):
    for s in sentences:
        words = {w.lower() for w in make_demo.tokens(s.middle)}
        assert not words & TENSE_CUES, s.middle


def test_middles_are_drawn_alike_for_both_tenses(sentences):
    def middle_words(openers):
        return {w for s in sentences if s.opener in openers for w in make_demo.tokens(s.middle)}

    assert middle_words(make_demo.PRESENT_OPENERS) == middle_words(make_demo.PAST_OPENERS)
    assert len({s.middle for s in sentences if s.verb}) > 0.6 * sum(1 for s in sentences if s.verb)


def test_pairs_are_prompts_ending_in_i():
    pairs = make_demo.pairs(3, 200)
    assert pairs and all(prompt.endswith(", I") for prompt, _, _ in pairs)
    assert all(right != wrong for _, right, wrong in pairs)
    assert {right for _, right, _ in pairs} <= PRESENT | PAST


def test_vocabulary_is_a_few_hundred_words(tokenizer):
    assert 150 <= tokenizer.vocab_size <= 500
