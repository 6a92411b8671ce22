"""The thing an n-gram model cannot do: the verb after "I" depends on a time phrase 8-20
words earlier ("Today, ..., I need" / "Last year, ..., I had"). A small LSTM trained on the
demo generator's sentences picks the right verb for held-out sentences; a bigram model,
which sees only "I", cannot do better than chance."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import load_generator

from wordlstm import predict
from wordlstm.checkpoint import load_model
from wordlstm.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_generator()


@pytest.fixture(scope="module")
def held_out(demo):
    """Sentences the models never saw: (prompt ending in "I", right verb, wrong verb)."""
    return demo.pairs(seed=4242, n=400)


def right_share(log_probs_of, tokenizer, held_out) -> float:
    right = [log_probs_of(prompt)[tokenizer.token_to_id(r)] for prompt, r, _ in held_out]
    wrong = [log_probs_of(prompt)[tokenizer.token_to_id(w)] for prompt, _, w in held_out]
    return float(np.mean(np.array(right) > np.array(wrong)))


def test_an_lstm_carries_the_time_phrase_to_the_verb(long_range_model, held_out):
    loaded = load_model(str(long_range_model))
    tok = loaded.tokenizer
    reading = predict.read_lines(
        loaded.model, [tok.encode(p) for p, _, _ in held_out], tok.eos_id, distributions=True
    )
    distributions = dict(zip((p for p, _, _ in held_out), reading.next_log_probs, strict=True))
    assert right_share(distributions.__getitem__, tok, held_out) >= 0.95


def test_a_bigram_model_cannot(demo, held_out):
    lines = (ROOT / "corpora" / "demo.txt").read_text(encoding="utf-8").splitlines()
    tok = Tokenizer.train(lines)
    ids = tok.encode_lines(lines)
    bigrams = Counter(zip(ids[:-1].tolist(), ids[1:].tolist(), strict=True))
    unigrams = Counter(ids.tolist())
    V = tok.vocab_size

    def log_probs_of(prompt):
        last = int(tok.encode(prompt)[-1])  # all a bigram model sees: "I"
        counts = np.array([bigrams[(last, w)] for w in range(V)], dtype=np.float64)
        return np.log((counts + 1) / (unigrams[last] + V))

    share = right_share(log_probs_of, tok, held_out)
    # both tenses follow "I" alike, so the bigram picks one verb of each pair every time
    assert share < 0.60
