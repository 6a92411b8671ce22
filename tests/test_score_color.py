"""`score --color` colours each token by the rank the model gave it, and `score --per-token
--json` gives each token's rank."""

import json
import re

import numpy as np
from conftest import assert_one_error_line, run

from wordlstm import predict
from wordlstm.checkpoint import load_model
from wordlstm.render_rank import BANDS, BEYOND, band

LINES = "The cat sat on the mat.\nThe dog sat on the zebra.\n"
BACKGROUND = {"green": "42", "yellow": "43", "red": "41", "magenta": "45"}


def test_per_token_json_ranks_count_the_likelier_words(trained):
    proc = run("score", "--per-token", "--json", input=LINES, home=trained, check=True)
    loaded = load_model(str(trained / "default"))
    tok = loaded.tokenizer
    for doc in map(json.loads, proc.out.splitlines()):
        ids = tok.encode(doc["text"])
        targets = [*ids.tolist(), tok.eos_id]
        for k, scored in enumerate(doc["token_log_probs"]):
            log_probs = predict.read_lines(
                loaded.model, [ids[:k]], tok.eos_id, distributions=True
            ).next_log_probs[0]
            assert scored["id"] == targets[k]
            want = int(np.sum(log_probs > log_probs[targets[k]]))
            assert scored["rank"] == want, (k, scored, want)


def test_color_paints_each_token_by_its_rank_band(trained):
    ranks = run("score", "--per-token", "--json", input=LINES, home=trained, check=True)
    proc = run(
        "score", "--color", input=LINES, home=trained, env={"NO_COLOR": "", "FORCE_COLOR": "1"}
    )
    assert proc.returncode == 0, proc.err
    painted = [
        re.findall(r"\x1b\[30;(\d+)m([^\x1b]*)\x1b\[0m", line) for line in proc.out.splitlines()
    ]
    for doc, cells in zip(map(json.loads, ranks.out.splitlines()), painted, strict=True):
        tokens = [t for t in doc["token_log_probs"] if t["token"] != "<eos>"]
        assert [text for _, text in cells] == [t["token"] for t in tokens]
        assert [code for code, _ in cells] == [BACKGROUND[band(t["rank"])[0]] for t in tokens]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.out).splitlines()
    assert plain[0].split("\t")[1] == "The cat sat on the mat."
    legend = [name for _, _, name in BANDS] + [BEYOND[1]]
    assert all(name in proc.err for name in legend) and "\x1b[" in proc.err


def test_color_without_a_terminal_is_plain_text(trained):
    proc = run("score", "--color", input=LINES, home=trained, check=True)
    assert "\x1b[" not in proc.out + proc.err
    assert proc.out.splitlines()[1].split("\t")[1] == "The dog sat on the <unk>."


def test_bands_hold_the_ranks_they_name():
    assert [band(r)[1] for r in (0, 1, 9, 10, 99, 100, 5000)] == [
        "top 1", "top 10", "top 10", "top 100", "top 100", "beyond", "beyond",
    ]  # fmt: skip


def test_color_with_json_is_one_error_line(trained):
    proc = run("score", "--color", "--json", input=LINES, home=trained)
    assert_one_error_line(proc, 2, "--color")
