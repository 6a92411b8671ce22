"""Lines of any length: read and scored in pieces with the LSTM state carried, so memory
stays bounded and the figures are those of reading the line at once."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SENTENCES, run
from processes import Cli, cli_env

from wordlstm.text import PIECE_BYTES, SHOWN_BYTES

MB = 1 << 20
# a unit of the 200 MB line: a known word and an unknown one, far shorter than a piece
UNIT = b"cat " + b"x" * 2000 + b" "
UNITS = 200 * MB // len(UNIT) + 1
SMALL_PIECE = {"WORDLSTM_PIECE_BYTES": "64"}


def long_line(words: int = 600) -> str:
    """A line of the training sentences' words and unknown ones, ~4 KB."""
    text = " ".join(SENTENCES * (words // 60 + 1)).split()[:words]
    return " ".join(w if i % 17 else "zebra" for i, w in enumerate(text))


def run_env(*args: str, home, input: bytes, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "wordlstm", *args],
        input=input,
        capture_output=True,
        env=cli_env(home, **env),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def objects(stdout: bytes) -> list[dict]:
    """The JSON objects of a --json output, one a line (a text may hold other breaks)."""
    assert stdout.endswith(b"\n")
    return [json.loads(line) for line in stdout.split(b"\n")[:-1]]


@pytest.mark.parametrize("continuous", [False, True])
def test_a_line_read_in_small_pieces_scores_as_read_at_once(trained, continuous):
    line = long_line()
    data = f"{line}\nThe cat sat.\n{line} and more\n".encode()
    args = ["score", "--json", "--per-token"] + (["--continuous"] if continuous else [])
    at_once, in_pieces = (
        objects(run_env(*args, home=trained, input=data, env=env).stdout)
        for env in ({}, SMALL_PIECE)
    )
    assert len(at_once) == len(in_pieces) == 3 and at_once[0]["tokens"] > 500
    for a, p in zip(at_once, in_pieces, strict=True):
        assert p["tokens"] == a["tokens"]
        assert p["log_prob"] == pytest.approx(a["log_prob"], rel=1e-6)
        assert p["ppl"] == pytest.approx(a["ppl"], rel=1e-6)
        assert [t["id"] for t in p["token_log_probs"]] == [t["id"] for t in a["token_log_probs"]]
        for tp, ta in zip(p["token_log_probs"], a["token_log_probs"], strict=True):
            assert tp["log_prob"] == pytest.approx(ta["log_prob"], rel=1e-5, abs=1e-6)
    assert [p["text"] for p in in_pieces] == [line, "The cat sat.", f"{line} and more"]


def test_a_prompt_read_in_small_pieces_completes_as_read_at_once(trained):
    data = f"{long_line()} The cat\n".encode()
    args = ["complete", "--json", "--words", "4"]
    at_once = json.loads(run_env(*args, home=trained, input=data, env={}).stdout)
    in_pieces = json.loads(run_env(*args, home=trained, input=data, env=SMALL_PIECE).stdout)
    assert in_pieces["continuation"] == at_once["continuation"]
    assert [w["word"] for w in in_pieces["next"]] == [w["word"] for w in at_once["next"]]
    for p, a in zip(in_pieces["next"], at_once["next"], strict=True):
        assert p["prob"] == pytest.approx(a["prob"], rel=1e-5)


def test_a_word_longer_than_a_piece_is_cut_at_the_piece_size(trained):
    """The documented rule: a run of more bytes than a piece without a space or tab is
    read as words of a piece each (here 200 bytes, pieces of 64: 4 unknown words)."""
    proc = run_env("score", "--json", home=trained, input=b"x" * 200 + b"\n", env=SMALL_PIECE)
    assert json.loads(proc.stdout)["tokens"] == 4 + 1  # and the end-of-line token


def write_line(path, units: int):
    """A file of one line of `units` UNITs ("cat xxx...x "), written in blocks."""
    with open(path, "wb") as f:
        for _ in range(units // 500):
            f.write(UNIT * 500)
        f.write(UNIT * (units % 500) + b"\n")
    return path


@pytest.fixture(scope="module")
def huge_line(tmp_path_factory):
    """One line of 200 MB."""
    path = write_line(tmp_path_factory.mktemp("huge") / "line.txt", UNITS)
    assert path.stat().st_size > 200 * MB
    return path


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """One line of 32 MB (old complete and eval needed GBs for it), then a short one."""
    path = write_line(tmp_path_factory.mktemp("long") / "line.txt", 32 * MB // len(UNIT))
    with open(path, "ab") as f:
        f.write(b"The cat sat on the mat.\n")
    return path


# runs its arguments as a child and reports the child's peak resident memory in KiB
PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "sys.stderr.write(f'\\npeak {peak // 1024 if sys.platform == \"darwin\" else peak}\\n')\n"
    "sys.exit(code)\n"
)


def peak_rss_run(*args: str, home, stdin=None) -> tuple[bytes, str, int]:
    """(stdout, stderr, peak resident KiB) of `wordlstm ARGS`, which must succeed."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "wordlstm", *args],
        stdin=stdin,
        capture_output=True,
        env=cli_env(home),
        timeout=600,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    rest, peak = err.rsplit("\npeak ", 1)
    return proc.stdout, rest, int(peak)


def test_a_200_megabyte_line_is_scored_in_at_most_300_megabytes_of_memory(trained, huge_line):
    out, _, peak = peak_rss_run("score", "--json", str(huge_line), home=trained)
    assert peak <= 300 * 1024, f"score peaked at {peak // 1024} MB"
    result = json.loads(out)
    assert result["tokens"] == 2 * UNITS + 1  # "cat", "xx...x" (unknown), and the end
    start, left_out = re.fullmatch(r"(.*)…\[(\d+) more bytes\]", result["text"]).groups()
    kept = len(start.encode())  # the whole pieces that fit in SHOWN_BYTES
    assert SHOWN_BYTES - PIECE_BYTES < kept <= SHOWN_BYTES and start.endswith(" ")
    assert kept + int(left_out) == huge_line.stat().st_size - 1


def test_complete_and_eval_of_a_long_line_stay_small(trained, long_file):
    units = 32 * MB // len(UNIT)
    with open(long_file, "rb") as stdin:
        out, _, peak = peak_rss_run("complete", "--json", home=trained, stdin=stdin)
    assert peak <= 300 * 1024, f"complete peaked at {peak // 1024} MB"
    assert [len(c["next"]) for c in objects(out)] == [5, 5]
    out, _, peak = peak_rss_run("eval", str(long_file), "--json", home=trained)
    assert peak <= 300 * 1024, f"eval peaked at {peak // 1024} MB"
    stream = 2 * units + 1 + 8  # the tokens of both lines, each with its end-of-line
    assert json.loads(out)["tokens"] == 10 * (stream // 10 - 1)  # 10 streams, as always


def test_ctrl_c_in_the_middle_of_a_long_line_ends_within_a_second(trained):
    with Cli("score", home=trained) as cli:
        cli.send(UNIT * (20 * MB // len(UNIT)))  # taken in: the line is being read
        sent = time.monotonic()
        cli.proc.send_signal(signal.SIGINT)
        cli.proc.wait(timeout=30)
        took = time.monotonic() - sent
        code, _, err = cli.finish()
    assert code == 130, err.decode()
    assert took < 1.0
    assert "Traceback" not in err.decode() and err.decode().startswith("tokens 0 |")


def test_eval_of_long_lines_in_small_pieces_equals_eval_at_once(trained, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text(f"{long_line()}\nThe cat sat.\n\n{long_line(300)}\n", encoding="utf-8")
    at_once, in_pieces = (
        objects(run_env("eval", str(text), "--json", home=trained, input=b"", env=env).stdout)[0]
        for env in ({}, SMALL_PIECE)
    )
    assert in_pieces["tokens"] == at_once["tokens"] > 800
    for figure in ("perplexity", "top1", "top5", "top1_words", "top5_words", "unknown_rate"):
        assert in_pieces[figure] == pytest.approx(at_once[figure], rel=1e-6)


def test_a_spooled_stream_evaluates_as_the_array():
    from test_predict import EOS, UNK, lines_stream, random_model

    from wordlstm import predict
    from wordlstm.data import TokenSpool

    model = random_model()
    _, stream = lines_stream(np.random.default_rng(5), n_lines=30)
    with TokenSpool() as spool:
        for part in np.array_split(stream, 7):
            spool.append(part)
        assert len(spool) == len(stream) and (spool[3:40] == stream[3:40]).all()
        spooled = predict.evaluate(model, spool, batch_size=3, bptt=5, special=(UNK, EOS))
    direct = predict.evaluate(model, stream, batch_size=3, bptt=5, special=(UNK, EOS))
    assert spooled == direct


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"text\x00\x01 binary", "looks like a binary file"),
        ("caf\xe9 au lait\n".encode("latin-1"), r"not UTF-8 text \(invalid byte at offset 3\)"),
        (b"\n  \n", "has no words"),
    ],
)
def test_eval_refuses_a_file_that_is_not_text(trained, tmp_path, data, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(data)
    proc = run("eval", str(bad), home=trained)
    assert proc.returncode == 2
    assert re.fullmatch(f"error: {re.escape(str(bad))}: {message}.*\n", proc.err)
