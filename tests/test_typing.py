"""The Python API of autocompletion: completions of a partial text, beam continuations,
and the Typing object, whose kept state makes a keystroke cost at most one model step."""

import numpy as np
import pytest

from wordlstm import autocomplete
from wordlstm.checkpoint import load_model

LINE = "Last year, due to my job, I had a loan."


@pytest.fixture(scope="module")
def loaded(demo_home):
    return load_model(str(demo_home / "default"))


def same(a: list, b: list) -> None:
    assert [s.word for s in a] == [s.word for s in b]
    assert np.allclose([s.prob for s in a], [s.prob for s in b], atol=1e-5)


def test_typing_offers_what_reading_the_whole_text_offers(loaded):
    typing = autocomplete.Typing(loaded, top=5)
    for n in range(len(LINE) + 1):
        typing.set_text(LINE[:n])
        same(typing.suggestions(), autocomplete.completions(loaded, LINE[:n], top=5))
    for n in (30, 12, 27):  # deleting back into earlier words, then typing on
        typing.set_text(LINE[:n])
        same(typing.suggestions(), autocomplete.completions(loaded, LINE[:n], top=5))


def test_a_keystroke_costs_at_most_one_model_step(loaded, monkeypatch):
    typing = autocomplete.Typing(loaded)
    steps = []
    forward = loaded.model.forward
    monkeypatch.setattr(loaded.model, "forward", lambda x, s: steps.append(x) or forward(x, s))
    for ch in LINE:
        before = len(steps)
        typing.feed(ch)
        typing.suggestions()
        assert len(steps) - before <= 1
        if ch.isalpha():  # a letter of a word: a prefix lookup, no step
            assert len(steps) == before
    assert all(x.shape == (1, 1) for x in steps)
    before = len(steps)
    typing.set_text(LINE[:15])  # back into an earlier word: the kept states serve
    typing.suggestions()
    assert len(steps) == before


def test_accepting_types_the_word_and_a_space(loaded):
    typing = autocomplete.Typing(loaded)
    typing.feed("Last year, due to my job, I h")
    assert typing.fragment == "h" and typing.suggestions()[0].word == "had"
    assert typing.accept() == "Last year, due to my job, I had "
    assert typing.fragment is None and typing.suggestions()  # now the next words
    assert typing.accept(99) == "Last year, due to my job, I had "  # no such choice


def test_a_fragment_matching_nothing_has_no_suggestions(loaded):
    assert autocomplete.completions(loaded, "I xq") == []
    typing = autocomplete.Typing(loaded)
    typing.feed("I xq")
    assert typing.suggestions() == [] and typing.accept() == "I xq"


def test_special_tokens_are_never_offered(loaded):
    offered = {s.word for s in autocomplete.completions(loaded, "The cat sat.", top=400)}
    assert offered and not offered & {"<eos>", "<unk>"}


def test_continuations_of_a_partial_text(loaded):
    best = autocomplete.continuations(loaded, "Last year, due to my job, I h", width=3, words=4)
    assert len(best) == 3 and all(c.text.startswith("h") for c in best)
    assert best[0].log_prob >= best[1].log_prob >= best[2].log_prob
