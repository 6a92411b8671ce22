"""The word being typed: the prefix rule, the prefix index, and `complete` on a prompt
whose last word is unfinished."""

import json

from conftest import run
from hypothesis import given
from hypothesis import strategies as st

from wordlstm.prefix import PrefixIndex

PROMPT = "Last year, due to my job, I"


def scan(words: list[str], fragment: str, skip: set[int]) -> list[int]:
    """The prefix rule by a scan over every word: exact case first, else lowercased."""
    ids = [i for i, w in enumerate(words) if i not in skip]
    exact = [i for i in ids if words[i].startswith(fragment)]
    return exact or [i for i in ids if words[i].lower().startswith(fragment.lower())]


@given(
    words=st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=60),
    fragment=st.text(max_size=3),
    data=st.data(),
)
def test_the_prefix_index_gives_what_a_full_scan_gives(words, fragment, data):
    if words and data.draw(st.booleans()):  # often a prefix of a real word
        word = data.draw(st.sampled_from(words))
        fragment = word[: data.draw(st.integers(0, len(word)))]
        if data.draw(st.booleans()):
            fragment = fragment.swapcase()
    skip = {0, 1} & set(range(len(words)))
    found = PrefixIndex(words, exclude=skip).matches(fragment)
    assert sorted(found.tolist()) == sorted(scan(words, fragment, skip))


def test_case_as_typed_and_lowercase_when_only_that_exists():
    index = PrefixIndex(["<unk>", "<eos>", "had", "Had", "have", "Harbour"], exclude=(0, 1))
    assert sorted(index.matches("Ha").tolist()) == [3, 5]
    assert sorted(index.matches("ha").tolist()) == [2, 4]
    assert sorted(index.matches("HA").tolist()) == [2, 3, 4, 5]  # no exact match: lowercased
    assert index.matches("<").tolist() == []  # special tokens are never offered


def test_an_unfinished_word_is_completed_by_the_likeliest_word(demo_home):
    proc = run("complete", f"{PROMPT} h", "--top", "1000", "--json", home=demo_home, check=True)
    out = json.loads(proc.out)
    words = [n["word"] for n in out["next"]]
    assert words[0] == "had"
    assert out["partial"] == "h"
    assert all(w.startswith("h") for w in words) and "have" in words
    assert abs(sum(n["prob"] for n in out["next"]) - 1) < 1e-6  # renormalised over them


def test_a_fragment_matching_nothing_gives_no_completions(demo_home):
    proc = run("complete", f"{PROMPT} xq", "--partial", "--words", "3", "--json", home=demo_home)
    assert proc.returncode == 0, proc.err
    out = json.loads(proc.out)
    assert out["partial"] == "xq" and out["next"] == [] and out["continuation"] == ""
    # by default a last word that begins no word is an unknown word: the next words follow
    out = json.loads(run("complete", f"{PROMPT} xq", "--json", home=demo_home, check=True).out)
    assert out["partial"] is None and len(out["next"]) == 5


def test_the_continuation_finishes_the_word(demo_home):
    proc = run("complete", f"{PROMPT} ha", "--words", "2", home=demo_home, check=True)
    first = proc.out.splitlines()[0]
    assert first.startswith(f"{PROMPT} had ")
    assert len(first.split()) == len(PROMPT.split()) + 2


def test_partial_flags_force_either_reading(demo_home):
    # "had" is a word: by default the next words after it; --partial completes it
    after = json.loads(run("complete", f"{PROMPT} had", "--json", home=demo_home, check=True).out)
    assert after["partial"] is None and after["next"][0]["word"] != "had"
    forced = run("complete", f"{PROMPT} had", "--partial", "--json", home=demo_home, check=True)
    assert json.loads(forced.out)["next"][0] == {"word": "had", "prob": 1.0}
    # "h" is no word: by default completed; --no-partial reads it as an unknown word
    plain = run("complete", f"{PROMPT} h", "--no-partial", "--json", home=demo_home, check=True)
    out = json.loads(plain.out)
    assert out["partial"] is None and not all(n["word"].startswith("h") for n in out["next"])
