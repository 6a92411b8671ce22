"""Keyboard metrics of `eval`: keystroke savings and top-3 of words, on an example worked
out by hand."""

import json

import numpy as np
from conftest import run

from wordlstm.checkpoint import save_model
from wordlstm.model import Architecture, LanguageModel
from wordlstm.tokenizer import Tokenizer

# With all LSTM weights zero the output is zero, so every position's logits are the
# decoder's bias: the same ranking everywhere, given here (higher = likelier). The special
# tokens rank highest and must still never be offered.
BIAS = {"<unk>": 10, "<eos>": 9, "the": 8, "a": 7, "they": 6, "cat": 5, "then": 4,
        "car": 3, "there": 2, "cart": 1, "Car": 0.5}  # fmt: skip
TEXT = "the cart there <unk> zebra then a\nCar\n"
# the    k=0 among the top 3 (the, a, they)                      1 of 4 keystrokes
# cart   k=0 7 likelier; k=1 "c": cat, car likelier -> 3rd       2 of 5
# there  "", "t", "th", "the": the, they, then likelier; "ther"  5 of 6
# <unk>  not a word to type
# zebra  unknown: typed in full                                  6 of 6
# then   k=0: 4 likelier; "t": the, they likelier                2 of 5
# a      k=0: the likelier (<unk>, <eos> are not offered)        1 of 2
# Car    k=0: 10 likelier; "C": only Car (case as typed)         2 of 4
USED, FULL, WORDS, TOP = 1 + 2 + 5 + 6 + 2 + 1 + 2, 4 + 5 + 6 + 6 + 5 + 2 + 4, 7, 2


def fixed_model(tmp_path):
    vocab_text = " ".join(w for w in BIAS if not w.startswith("<"))
    tok = Tokenizer.train([vocab_text], split="whitespace")
    arch = Architecture(vocab=tok.vocab_size, embed=2, hidden=2, layers=1, tied=False)
    model = LanguageModel.init(arch, np.random.default_rng(0))
    for name in model.params:
        model.params[name][...] = 0.0
    for word, b in BIAS.items():
        model.params["decoder.bias"][tok.token_to_id(word)] = b
    path = tmp_path / "fixed"
    save_model(path, LanguageModel.from_weights(arch, model.weights()), tok, {})
    return path


def test_keystrokes_and_top3_by_the_rule_worked_out_by_hand(tmp_path):
    model = fixed_model(tmp_path)
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    proc = run("eval", str(text), "--model", str(model), "--json")
    assert proc.returncode == 0, proc.err
    r = json.loads(proc.out)
    assert r["typed_words"] == WORDS
    assert r["keystroke_savings"] == 1 - USED / FULL
    assert r["top3_words"] == TOP / WORDS
    shown = run("eval", str(text), "--model", str(model), check=True).out
    assert f"keystroke savings       {100 * (1 - USED / FULL):.2f}%" in shown
    assert "keystroke" not in run("eval", str(text), "--model", str(model), "--no-keyboard").out
