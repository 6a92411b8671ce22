"""Hostile text for `score` and `complete`: whatever the bytes, one output line per input
line and exit 0."""

import io
import json
import math
import os

import pytest
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wordlstm.checkpoint import load_model
from wordlstm.pipeline import complete, score_lines
from wordlstm.text import LineReader

HOSTILE_LINES = [
    b"nul \x00 and bell \x07 and escape \x1b[31mred\x1b[0m",
    "emoji \U0001f600\U0001f469\u200d\U0001f4bb flags \U0001f1eb\U0001f1f7".encode(),
    "CJK \u732b\u304c\u5ea7\u3063\u305f \ud55c\uad6d\uc5b4".encode(),
    "right to left \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u202eoverride".encode(),
    b"invalid utf-8 \xff\xfe \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80",
    b"windows line\r",
    b"",
    b"   \t  ",
    b"lone \r carriage return and \x0b\x0c\x1c\x1d\x1e\x85",
    "unicode breaks \u2028 and \u2029 and a BOM \ufeff inside".encode(),
    b"<eos> <unk> literal specials",
    b"\r",
]
STDIN = b"\n".join(HOSTILE_LINES) + b"\nno final newline"
LINES = len(HOSTILE_LINES) + 1


def json_lines(out: str) -> list[dict]:
    assert out.endswith("\n")
    return [json.loads(line) for line in out.split("\n")[:-1]]


def test_score_writes_one_line_per_hostile_line(trained):
    proc = run("score", input=STDIN, home=trained)
    assert proc.returncode == 0, proc.err
    assert proc.stdout.count(b"\n") == LINES
    for row in proc.out.split("\n")[:-1]:
        ppl, log_prob, tokens, _ = row.split("\t", 3)
        assert float(ppl) > 0 and math.isfinite(float(log_prob)) and int(tokens) >= 1


def test_score_json_writes_one_object_per_hostile_line(trained):
    proc = run("score", "--json", "--per-token", input=STDIN, home=trained)
    assert proc.returncode == 0, proc.err
    objects = json_lines(proc.out)
    assert len(objects) == LINES
    assert objects[0]["text"].startswith("nul \x00 and bell")
    assert objects[5]["text"] == "windows line"  # CRLF read as a line end
    assert "\ufffd" in objects[4]["text"]  # invalid bytes became U+FFFD


def test_complete_json_writes_one_object_per_hostile_prompt(trained):
    proc = run("complete", "--json", "--words", "3", input=STDIN, home=trained)
    assert proc.returncode == 0, proc.err
    objects = json_lines(proc.out)
    assert len(objects) == LINES
    # five next words, or the completions of an unfinished last word (as "...red\x1b[0m")
    assert all(len(o["next"]) == 5 or o["partial"] is not None for o in objects)


def test_complete_takes_a_prompt_argument_that_is_not_utf8(trained):
    proc = run("complete", os.fsdecode(b"The \xff\xfe cat"), "--json", home=trained)
    assert proc.returncode == 0, proc.err
    assert json_lines(proc.out)[0]["prompt"] == "The \ufffd\ufffd cat"


def test_a_two_megabyte_line(trained):
    long_line = ("\u732b" * 100 + " " + "w" * 99 + " ") * 5_250  # 2.1 MB of UTF-8, 10k words
    data = long_line.encode() + b"\nThe cat sat.\n"
    assert len(long_line.encode()) > 2_000_000
    for args in (["score"], ["complete", "--json"]):
        proc = run(*args, input=data, home=trained)
        assert proc.returncode == 0, proc.err
        assert proc.stdout.count(b"\n") == 2


@pytest.fixture(scope="module")
def loaded(trained):
    return load_model(str(trained / "default"))


def expected_lines(data: bytes) -> int:
    """Lines in a byte stream, split on b"\\n", a last one without a newline included."""
    return data.count(b"\n") + (not data.endswith(b"\n"))


def check_stream(loaded, data: bytes) -> None:
    """Score and complete each line of `data`; one result each, finite, JSON on one line."""
    lines = list(LineReader([io.BytesIO(data)]))
    assert len(lines) == (expected_lines(data) if data else 0)
    scores = list(score_lines(loaded, lines, per_token=True))
    assert len(scores) == len(lines)
    completions = complete(loaded, lines, words=2) if lines else []
    assert len(completions) == len(lines)
    for text, s, c in zip(lines, scores, completions, strict=True):
        assert "\n" not in s.text and s.text == text
        assert math.isfinite(s.log_prob) and s.tokens == len(s.token_scores) >= 1
        record = {"prompt": c.prompt, "next": c.next, "continuation": c.continuation}
        assert c.prompt == text and "\n" not in json.dumps(record, ensure_ascii=False)


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_give_one_result_per_line(loaded, data):
    check_stream(loaded, data)


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_any_unicode_gives_one_result_per_line(loaded, lines, newline):
    check_stream(loaded, newline.join(lines).encode("utf-8", "surrogatepass"))
