"""The best continuations (beam search) and truncated sampling (top-k, top-p)."""

import json

import numpy as np
from conftest import run

from wordlstm.predict import truncate

PROMPTS = ["Last year, due to my job, I", "The post office", "These days, I can"]


def continuations(home, *flags: str) -> list[dict]:
    proc = run("complete", "--words", "6", "--json", *flags, input="\n".join(PROMPTS), home=home)
    assert proc.returncode == 0, proc.err
    return [json.loads(line) for line in proc.out.splitlines()]


def test_a_beam_of_one_is_the_greedy_continuation(demo_home):
    greedy = [c["continuation"] for c in continuations(demo_home)]
    beam = continuations(demo_home, "--beam", "1")
    assert [c["continuation"] for c in beam] == greedy
    assert [c["beams"][0]["text"] for c in beam] == greedy


def test_beams_are_best_first_with_the_log_probs_score_gives(demo_home):
    for c in continuations(demo_home, "--beam", "4"):
        beams = c["beams"]
        assert len(beams) == 4
        log_probs = [b["log_prob"] for b in beams]
        assert log_probs == sorted(log_probs, reverse=True)
        assert c["continuation"] == beams[0]["text"]
        lines = [c["prompt"]] + [f"{c['prompt']} {b['text']}" for b in beams]
        proc = run("score", "--json", "--per-token", input="\n".join(lines), home=demo_home)
        prompt, *scored = [json.loads(line) for line in proc.out.splitlines()]
        n = prompt["tokens"] - 1  # the prompt's tokens, its end-of-line token left out
        for b, s in zip(beams, scored, strict=True):
            tokens = s["token_log_probs"][n:]  # the continuation's, then the end of line
            if not b["ended"]:
                tokens = tokens[:-1]
            expected = sum(t["log_prob"] for t in tokens)
            assert abs(b["log_prob"] - expected) < 1e-4, (b, tokens)


def test_sampling_cut_to_one_word_is_greedy(demo_home):
    greedy = continuations(demo_home)
    for cut in (["--top-k", "1"], ["--top-p", "1e-9"]):
        sampled = continuations(demo_home, "--sample", "--seed", "7", *cut)
        assert [c["continuation"] for c in sampled] == [c["continuation"] for c in greedy]


def test_truncation_keeps_the_top_k_and_the_nucleus():
    p = np.array([[0.1, 0.4, 0.2, 0.3]])
    assert np.allclose(truncate(p, top_p=0.5), [[0, 4 / 7, 0, 3 / 7]])
    assert np.allclose(truncate(p, top_p=0.65), [[0, 4 / 7, 0, 3 / 7]])
    assert np.allclose(truncate(p, top_p=0.71), [[0, 4 / 9, 2 / 9, 3 / 9]])
    assert np.allclose(truncate(p, top_k=3, top_p=1.0), [[0, 4 / 9, 2 / 9, 3 / 9]])
    assert np.allclose(truncate(p), p)


def test_bad_search_flags_are_usage_errors(demo_home):
    for flags in (
        ["--beam", "2"],
        ["--beam", "2", "--words", "3", "--sample"],
        ["--top-p", "0", "--sample"],
        ["--top-k", "3"],  # without --sample it would do nothing
    ):
        proc = run("complete", "a", *flags, home=demo_home)
        assert proc.returncode == 2 and proc.err.startswith("error: "), (flags, proc.err)
