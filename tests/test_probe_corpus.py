"""The probe generator, a second test of long-range memory beside the demo corpus:
deterministic, the verb decided by the time phrase or the subject alone, over middles of 6 to
24 tokens that hold no cue, and out of reach of a bigram model."""

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wordlstm.tokenizer import Tokenizer

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
spec = importlib.util.spec_from_file_location("make_probe", CORPORA / "make_probe.py")
make_probe = sys.modules["make_probe"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_probe)

FUTURE = {form.split()[0] for form, _, _ in make_probe.TENSE_PAIRS}
PAST = {form.split()[0] for _, form, _ in make_probe.TENSE_PAIRS}
SINGULAR = {verb for verb, _, _ in make_probe.NUMBER_PAIRS}
PLURAL = {verb for _, verb, _ in make_probe.NUMBER_PAIRS}
PAIR_WORDS = {
    word
    for pair in (*make_probe.TENSE_PAIRS, *make_probe.NUMBER_PAIRS)
    for form in pair[:2]
    for word in form.split()
}
TIME_WORDS = {
    "tomorrow", "yesterday", "today", "tonight", "now", "soon", "later", "earlier", "ago",
    "next", "last", "previous", "then", "back", "before", "after", "long", "once", "day",
    "days", "week", "weeks", "weekend", "month", "months", "year", "years", "decades",
    "summer", "spring", "winter", "autumn", "childhood", "coming", "past", "future",
}  # fmt: skip


@pytest.fixture(scope="module")
def sentences():
    return make_probe.generate(seed=11, n=4000)


def dependent(sentences, kind):
    return [s for s in sentences if s.kind == kind]


def test_same_seed_same_text_other_seed_other_text():
    assert make_probe.generate(5, 300) == make_probe.generate(5, 300)
    assert make_probe.generate(5, 300) != make_probe.generate(6, 300)
    assert make_probe.pairs(5, 300) == make_probe.pairs(5, 300)


def test_both_kinds_and_a_share_of_plain_sentences(sentences):
    shares = Counter(s.kind for s in sentences)
    assert 0.45 < shares["tense"] / len(sentences) < 0.55
    assert 0.25 < shares["number"] / len(sentences) < 0.35
    assert 0.15 < shares[""] / len(sentences) < 0.25
    assert all(not s.prompt and not s.verb for s in sentences if not s.kind)


def test_the_time_phrase_decides_the_tense(sentences):
    pairs = {(f.split()[0], p.split()[0]) for f, p, _ in make_probe.TENSE_PAIRS}
    for s in dependent(sentences, "tense"):
        future = s.cue.lower() in {o.lower() for o in make_probe.FUTURE_OPENERS}
        assert future != (s.cue.lower() in {o.lower() for o in make_probe.PAST_OPENERS})
        assert s.verb in (FUTURE if future else PAST)
        assert ((s.verb, s.wrong) if future else (s.wrong, s.verb)) in pairs
        assert s.text.startswith(f"{s.cue}, {s.middle}, ") and s.prompt.startswith(s.text[:5])


def test_the_subject_decides_the_number(sentences):
    pairs = {(one, many) for one, many, _ in make_probe.NUMBER_PAIRS}
    plurals = {many for _, many in make_probe.NOUNS}
    for s in dependent(sentences, "number"):
        plural = s.cue.split()[-1] in plurals
        assert s.verb in (PLURAL if plural else SINGULAR)
        assert ((s.wrong, s.verb) if plural else (s.verb, s.wrong)) in pairs
        assert s.text.startswith(f"{s.cue} {s.middle} {s.verb} ")


def test_the_prompt_ends_right_before_the_verb(sentences):
    tokenizer = Tokenizer.train([s.text for s in sentences])
    for s in sentences:
        if s.kind:
            assert s.text.startswith(s.prompt + " ")
            ids = tokenizer.encode(s.text)
            assert ids[tokenizer.encode(s.prompt).size] == tokenizer.token_to_id(s.verb)


def test_middles_hold_no_time_word_and_no_verb_of_the_pairs(sentences):
    for s in sentences:
        if s.kind:
            words = {w.lower() for w in make_probe.tokens(s.middle)}
            assert not words & (TIME_WORDS | PAIR_WORDS), s.middle


def test_middles_of_6_to_24_tokens_drawn_alike_for_both_classes(sentences):
    lengths = {len(make_probe.tokens(s.middle)) for s in sentences if s.kind}
    assert lengths == set(range(6, 25))
    for kind, first in (("tense", FUTURE), ("number", SINGULAR)):
        words = [set(), set()]
        for s in dependent(sentences, kind):
            words[s.verb in first] |= set(make_probe.tokens(s.middle))
        assert words[0] == words[1], kind
    middles = [s.middle for s in sentences if s.kind]
    assert len(set(middles)) > 0.95 * len(middles)


def test_lowercase_and_capitalised_sentences(sentences):
    lower = [s for s in sentences if s.text == s.text.lower()]
    assert 0.3 < len(lower) / len(sentences) < 0.5
    assert all(s.text[0].isupper() for s in sentences if s.text != s.text.lower())
    assert {s.cue.lower() for s in lower if s.kind == "tense"} == {
        o.lower() for o in (*make_probe.FUTURE_OPENERS, *make_probe.PAST_OPENERS)
    }


def test_a_bigram_model_is_at_chance():
    """All a bigram model sees is the word before the verb (the subject, or the middle's last
    noun, whose number is drawn apart from the subject's): it cannot tell the classes."""
    lines = [s.text for s in make_probe.generate(0, 8000)]
    tok = Tokenizer.train(lines)
    ids = tok.encode_lines(lines)
    bigrams = Counter(zip(ids[:-1].tolist(), ids[1:].tolist(), strict=True))
    held_out = make_probe.pairs(4242, 1500)

    def right(prompt, verb, wrong) -> bool:
        last = int(tok.encode(prompt)[-1])
        return bigrams[(last, tok.token_to_id(verb))] > bigrams[(last, tok.token_to_id(wrong))]

    share = float(np.mean([right(*p) for p in held_out]))
    assert 0.40 < share < 0.60
