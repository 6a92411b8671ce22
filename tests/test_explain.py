"""`wordlstm explain`: the gates it shows are the gate equations' values, the memory
figures follow from the forget gate, and the attribution finds what moved the verb."""

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_error_line, run
from test_gradients import plain_lstm

from wordlstm import explain
from wordlstm.checkpoint import Loaded, load_model

PROMPT = "Last year, due to my job, I"
ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("attribution", ROOT / "benchmarks" / "attribution.py")
attribution = sys.modules["attribution"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(attribution)


@pytest.fixture(scope="module")
def tiny(trained) -> Loaded:
    return load_model(str(trained / "default"))


def test_json_gates_equal_the_plain_gate_equations(trained, tiny):
    proc = run("explain", PROMPT, "--json", home=trained, check=True)
    doc = json.loads(proc.out)
    tok, weights = tiny.tokenizer, tiny.model.weights()
    ids = tok.encode_prompt(PROMPT).ids
    assert doc["tokens"] == [tok.id_to_token(i) for i in ids]
    # the test's own LSTM on the same weights in float64: h from the plain gate equations,
    # and each step's gates from them again, given the h before it
    w = {n: np.asarray(a, dtype=np.float64) for n, a in weights.items()}
    x = w["encoder.weight"][np.concatenate([[tok.eos_id], ids])][:, None, :]  # (T, 1, E)
    H = tiny.model.arch.hidden
    w_ih, w_hh = w["rnn.weight_ih_l0"], w["rnn.weight_hh_l0"]
    b_ih, b_hh = w["rnn.bias_ih_l0"], w["rnn.bias_hh_l0"]
    h_out, _, _ = plain_lstm(x, np.zeros((1, H)), np.zeros((1, H)), w_ih, w_hh, b_ih, b_hh)
    h = h_out[:, 0]  # (T, H)
    z = x[:, 0] @ w_ih.T + np.vstack([np.zeros((1, H)), h[:-1]]) @ w_hh.T + b_ih + b_hh
    want = {
        "i": 1 / (1 + np.exp(-z[:, :H])),
        "f": 1 / (1 + np.exp(-z[:, H : 2 * H])),
        "g": np.tanh(z[:, 2 * H : 3 * H]),
        "o": 1 / (1 + np.exp(-z[:, 3 * H :])),
        "h": h,
    }
    c, cells = np.zeros(H), []
    for i, f, g in zip(want["i"], want["f"], want["g"], strict=True):
        c = f * c + i * g
        cells.append(c)
    want["c"] = np.array(cells)
    layer = doc["layers"][0]
    for name, values in want.items():  # the prompt's steps: after the <eos> step
        np.testing.assert_allclose(np.array(layer[name]), values[1:], atol=1e-6, err_msg=name)
    np.testing.assert_allclose(layer["mean_forget"], want["f"][1:].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(layer["cell_norm"], np.linalg.norm(want["c"][1:], axis=1), atol=1e-6)
    assert len(doc["memory"]) == H and {"word", "prob"} <= set(doc["next"][0])


def test_half_lives_from_known_forget_values():
    # f = 1/2 each step: tau = -1/ln(1/2) = 1/ln 2 tokens, the half-life exactly 1 token
    f = np.full((4, 3), 0.5)
    f[:, 1] = math.exp(-1 / 10)  # tau = 10 tokens, half-life 10 ln 2
    f[:, 2] = [0.9, 0.8, 0.5, 0.25]  # geometric mean (0.09)^(1/4)
    tau = explain.time_constant(f)
    np.testing.assert_allclose(tau[:2], [1 / math.log(2), 10.0])
    np.testing.assert_allclose(tau[2], -4 / math.log(0.09))
    np.testing.assert_allclose(explain.half_life(f)[:2], [1.0, 10 * math.log(2)])
    kept = explain.kept_until_last(f)
    np.testing.assert_allclose(kept[:, 2], [0.8 * 0.5 * 0.25, 0.5 * 0.25, 0.25, 1.0])
    np.testing.assert_allclose(kept[:, 0], [0.125, 0.25, 0.5, 1.0])


def test_memory_ranks_the_unit_that_holds_the_first_token():
    f = np.array([[0.5, 0.99, 0.9], [0.5, 0.99, 0.4], [0.5, 0.99, 0.9]])
    layer = explain.LayerTrace(*(np.zeros((3, 3)),) * 6)
    layer.f = f
    units = explain.memory([layer])
    assert [(m.unit, m.earliest) for m in units] == [(1, 0), (2, 1), (0, 1)]
    assert units[0].kept == pytest.approx(0.99**2)


def test_gradient_x_input_is_the_targets_slope_along_each_embedding(tiny):
    # d/da target(e_t scaled by 1 + a) at a = 0 is d target/d e_t . e_t; the prompt's words
    # are all different, so scaling a word's row scales one token's embedding
    prompt = "The cat sat on the mat"
    model64 = explain.float64_model(tiny.model)
    loaded = Loaded(tiny.path, model64, tiny.tokenizer, tiny.config)
    a = explain.attribute(loaded, prompt, "rug", "dog")
    ids, _ = explain.prompt_ids(loaded, prompt)
    assert len(set(ids.tolist())) == len(ids)
    E, eps = model64.params["encoder.weight"], 1e-6
    numeric = []
    for i in ids:
        saved = E[i].copy()
        E[i] = saved * (1 + eps)
        up = explain.attribute(loaded, prompt, "rug", "dog").target
        E[i] = saved * (1 - eps)
        down = explain.attribute(loaded, prompt, "rug", "dog").target
        E[i] = saved
        numeric.append((up - down) / (2 * eps))
    np.testing.assert_allclose(a.gradient_x_input, numeric, rtol=1e-5, atol=1e-8)
    # occlusion: the target with that token read as <unk>, by a plain re-reading
    k = 2
    occluded = " ".join("<unk>" if j == k else w for j, w in enumerate(prompt.split()))
    again = explain.attribute(loaded, occluded, "rug", "dog").target
    assert a.occlusion[k] == pytest.approx(a.target - again, abs=1e-9)


def test_the_time_phrase_carries_the_verb(long_range_model):
    """On held-out generator sentences, attribution of log p(right verb) - log p(wrong verb)
    (benchmarks/attribution.py's measure): the model has learnt the rule, and occluding the
    time phrase lowers the preference for the right verb. How often it flips the preference
    depends on how the model reads <unk> (past phrases flipped in 99% of sentences with one
    BLAS thread's weights, 46% with two's), so it is reported, not asserted: all the shares
    are in the message."""
    shares = attribution.measure(
        load_model(str(long_range_model)), attribution.held_out_sentences(400)
    )
    assert shares.right >= 0.95, shares
    assert shares.phrase_lowers >= 0.9, shares


def test_the_attribution_benchmark_writes_its_table(demo_home, tmp_path):
    out = tmp_path / "attribution.md"
    model = str(demo_home / "default")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "attribution.py"), model]
        + ["--held-out", "12", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = out.read_text(encoding="utf-8")
    assert "12 held-out demo sentences" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "%" in line]
    assert len(rows) == 7 and all(0 <= float(r.split("|")[2].strip(" %")) <= 100 for r in rows)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["", "--json"], ["prompt is empty"]),
        ([PROMPT, "--why", "zebra"], ["'zebra'", "vocabulary"]),
        ([PROMPT, "--why", "sat", "--against", "qqq"], ["'qqq'"]),
        ([PROMPT, "--against", "sat"], ["--against needs --why"]),
        ([PROMPT, "--units", "-1"], ["--units"]),
        ([PROMPT, "--model", "nothing-here"], ["nothing-here"]),
    ],
)
def test_bad_input_is_one_error_line(trained, args, words):
    assert_one_error_line(run("explain", *args, home=trained), 2, *words)


def test_the_terminal_view_shows_the_gates_the_bars_and_the_next_words(trained):
    proc = run("explain", PROMPT, "--why", "sat", "--units", "2", home=trained, check=True)
    lines = proc.out.splitlines()
    assert lines[0].split()[:5] == ["token", "f0", "i0", "o0", "|c|0"]
    assert [line.split()[0] for line in lines[1:9]] == ["Last", "year", ",", "due", "to"] + [
        "my",
        "job",
        ",",
    ]
    assert all(re.search(r"│", line) for line in lines[1:10])
    assert "target log p(sat)" in proc.out
    assert "what carried the memory" in proc.out and lines[-1].startswith("next: ")


def test_the_html_page_is_self_contained(trained, tmp_path):
    page = tmp_path / "x.html"
    run("explain", PROMPT, "--why", "sat", "--html", str(page), home=trained, check=True)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert text.count("<tr>") == 1 + len(PROMPT.replace(",", " ,").split())


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless Chromium (apt-get install -y chromium) on the arguments; a missing browser
    fails the test, as it is the check this needs."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: apt-get install -y chromium"
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        timeout=120,
    )


def test_the_html_page_renders_in_headless_chromium(trained, tmp_path):
    page = tmp_path / "x.html"
    run("explain", PROMPT, "--why", "sat", "--html", str(page), home=trained, check=True)
    dom = chromium("--dump-dom", page.as_uri()).stdout.decode()
    # the browser's own parse: one row per token plus the heading, coloured cells in each
    rows = re.findall(r"<tr>(.*?)</tr>", dom, re.S)
    assert len(rows) == 1 + 9 and all(r.count("background: rgb") >= 4 for r in rows[1:])
    shot = tmp_path / "x.png"
    chromium("--window-size=1000,800", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
