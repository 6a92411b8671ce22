"""What the CLI says and how it looks at its edges (issue 19, items 7 and 8): the progress bar
under a time budget, the start line, errors that say what to do, unknown prompt words, the
`models` listing, help, completion, NO_COLOR, eval's progress and complete's stdin blocks."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, run

# an SGR sequence that sets a colour: foreground or background, 8, 16, 256 or true colours
ANSI_COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def run_on_terminal(
    *args: str, home: Path, env: dict | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    """Runs `python -m wordlstm ARGS` with stderr on a pseudo-terminal (stdout a pipe), as
    in a terminal; returns (exit code, stdout, everything written to the terminal)."""
    full = dict(os.environ, WORDLSTM_HOME=str(home), COLUMNS="160", LINES="40", TERM="xterm")
    full.pop("NO_COLOR", None)
    full.update(env or {})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=full,
    )
    os.close(slave)
    terminal = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:  # until the child closes its end of the terminal
            left = deadline - time.monotonic()
            assert left > 0, f"wordlstm {' '.join(args)} did not end in {timeout} s"
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave side has closed it
                break
            if not chunk:
                break
            terminal += chunk
        out = proc.stdout.read()
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        proc.kill()
        proc.stdout.close()
    return code, out.decode("utf-8", "replace"), terminal.decode("utf-8", "replace")


# --- item 7: say what happened ---------------------------------------------------------------


def test_the_progress_bar_counts_down_the_time_budget(home, corpus):
    """With --max-time, the time left is the budget's (not the 1000 epochs'), and the final
    line says that the budget ended the run."""
    budget = 3
    code, _, terminal = run_on_terminal(
        "train", str(corpus), *TINY, "--epochs", "1000", "--max-time", str(budget), home=home,
        env={"NO_COLOR": "1"},
    )  # fmt: skip
    assert code == 0, terminal
    left = [int(m) * 60 + int(s) for m, s in re.findall(r"(\d+):(\d\d) left", terminal)]
    assert left, terminal  # the bar was drawn
    assert max(left) <= budget
    assert re.search(rf"stopped by --max-time after {budget} s", terminal), terminal


def test_the_json_summary_says_whether_the_budget_ended_the_run(home, corpus):
    proc = run("train", str(corpus), *TINY, "--epochs", "1000", "--max-time", "1", "--json",
               "--model", "timed", home=home)  # fmt: skip
    assert proc.returncode == 0, proc.err
    assert json.loads(proc.out)["stopped_by_budget"] is True
    proc = run("train", str(corpus), *TINY, "--epochs", "1", "--json", home=home)
    assert json.loads(proc.out)["stopped_by_budget"] is False
    proc = run("train", str(corpus), *TINY, "--epochs", "1", "--force", home=home)
    assert "saved default" in proc.err and "stopped by" not in proc.err


def test_a_start_line_gives_vocabulary_tokens_and_parameters(home, corpus):
    proc = run("train", str(corpus), *TINY, "--epochs", "1", home=home, check=True)
    config = json.loads((home / "default" / "config.json").read_text())
    listed = json.loads(run("models", "--json", home=home).out)[0]
    first = proc.err.splitlines()[0]
    data = config["data"]
    assert first == (
        f"vocabulary {config['architecture']['vocab']:,} words | training "
        f"{data['train_tokens']:,} tokens | validation {data['valid_tokens']:,} tokens | "
        f"{listed['params']:,} parameters"
    )


@pytest.mark.parametrize("command", [["complete", "hi"], ["score"], ["eval", "FILE"]])
def test_the_first_run_error_says_how_to_train_a_model(command, home, corpus):
    command = [str(corpus) if a == "FILE" else a for a in command]
    proc = run(*command, input="hi\n", home=home)
    assert proc.returncode == 2
    assert proc.err.startswith("error: no model named 'default'")
    assert "wordlstm train FILE" in proc.err and len(proc.err.splitlines()) == 1


def test_an_unknown_model_name_gets_did_you_mean(trained):
    proc = run("complete", "The", "--model", "defualt", home=trained)
    assert proc.returncode == 2
    assert proc.err == "error: no model named 'defualt'; did you mean 'default'?\n"
    far = run("complete", "The", "--model", "zzzzzz", home=trained)
    assert far.err == "error: no model named 'zzzzzz' (see 'wordlstm models')\n"


def test_unknown_prompt_words_are_reported_and_other_cases_read_as_known(trained):
    """The corpus knows "I" and "Today", never "i" or "today": those are read as the known
    words; "xyzzy" is unknown, said on stderr and in --json."""
    proc = run("complete", "xyzzy i like green", "--json", home=trained)
    got = json.loads(proc.out)
    assert got["unknown"] == ["xyzzy"]
    assert got["recased"] == {"i": "I"}
    assert proc.err == "unknown words: xyzzy; read i as I\n"
    known = json.loads(run("complete", "xyzzy I like green", "--json", home=trained).out)
    assert got["next"] == known["next"]
    text = run("complete", "today, due to", home=trained)
    assert text.err == "read today as Today\n"
    assert text.out == run("complete", "Today, due to", home=trained).out
    clean = run("complete", "The cat", home=trained)
    assert (
        clean.err == ""
        and json.loads(run("complete", "The cat", "--json", home=trained).out)["unknown"] == []
    )


def test_score_reads_words_exactly_as_written(trained):
    """Scoring is the probability of the text as it is: no other case is tried."""
    lower = json.loads(run("score", "--json", input="i like green tea.\n", home=trained).out)
    upper = json.loads(run("score", "--json", input="I like green tea.\n", home=trained).out)
    assert lower["log_prob"] < upper["log_prob"]


def test_eos_and_unk_are_never_offered_as_next_words(trained):
    """After a full sentence the end of the line is the likeliest token; it is not a word."""
    proc = run("complete", "The cat sat on the mat.", "--top", "100", "--json", home=trained)
    words = [w["word"] for w in json.loads(proc.out)["next"]]
    vocab = json.loads((trained / "default" / "config.json").read_text())["architecture"]
    assert "<eos>" not in words and "<unk>" not in words
    assert len(words) == vocab["vocab"] - 2


# --- item 8: the CLI's edges -----------------------------------------------------------------


def test_score_per_token_as_text(trained):
    """--per-token without --json: `token=id log_prob` per token, tab-separated, then the
    line's total and its unknown words, as KenLM's query prints."""
    text = "The cat sat on xyzzy.\nThe dog sat.\n"
    proc = run("score", "--per-token", input=text, home=trained)
    assert proc.returncode == 0, proc.err
    scored = [json.loads(x) for x in run("score", "--json", "--per-token", input=text,
                                          home=trained).out.splitlines()]  # fmt: skip
    lines = proc.out.splitlines()
    assert len(lines) == 2
    for line, want in zip(lines, scored, strict=True):
        *tokens, total = line.split("\t")
        assert [t.split(" ")[0] for t in tokens] == [
            f"{t['token']}={t['id']}" for t in want["token_log_probs"]
        ]
        values = [float(t.split(" ")[1]) for t in tokens]
        assert values == pytest.approx([t["log_prob"] for t in want["token_log_probs"]], abs=1e-4)
        unknown = sum(t["token"] == "<unk>" for t in want["token_log_probs"])
        assert total == f"Total: {want['log_prob']:.4f} OOV: {unknown}"
    assert lines[0].split("\t")[4].startswith("<unk>=0 ")
    assert "--per-token" in run("score", "--help").out and "Total" in run("score", "--help").out


def broken_store(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained store with a good model, two broken folders and some junk."""
    home = tmp_path / "store"
    shutil.copytree(trained, home)
    (home / "half").mkdir()
    (home / "half" / "config.json").write_text("{oops")
    (home / "empty").mkdir()
    (home / "notes.txt").write_text("not a folder")
    return home


def test_models_json_lists_every_folder_with_its_status(trained, tmp_path):
    home = broken_store(trained, tmp_path)
    listed = {m["name"]: m for m in json.loads(run("models", "--json", home=home).out)}
    assert sorted(listed) == ["default", "empty", "half"]
    good = listed["default"]
    config = json.loads((home / "default" / "config.json").read_text())
    size = sum(f.stat().st_size for f in (home / "default").iterdir())
    assert good["status"] == "finished" and good["path"] == str(home / "default")
    assert good["size"] == size and good["vocab"] == config["architecture"]["vocab"]
    assert (good["layers"], good["hidden"]) == (1, 16)
    assert good["valid_ppl"] == config["metrics"]["valid_ppl"]
    assert good["tokens"] == config["metrics"]["trained_tokens"]
    assert good["saved"] == config["saved"] and good["params"] > 0
    for name in ("empty", "half"):
        assert listed[name]["status"] == "broken" and listed[name]["problem"]
    assert run("models", "--json", home=tmp_path / "none").out == "[]\n"


def test_models_in_a_pipe_are_columns_awk_can_split(trained, tmp_path):
    home = broken_store(trained, tmp_path)
    proc = run("models", home=home)
    rows = [line.split("\t") for line in proc.out.splitlines()]
    header = rows[0]
    assert header == ["name", "vocab", "layers_x_hidden", "params", "valid_ppl", "tokens",
                      "size", "saved", "status"]  # fmt: skip
    assert all(len(r) == len(header) and all(f and " " not in f for f in r) for r in rows)
    table = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    listed = {m["name"]: m for m in json.loads(run("models", "--json", home=home).out)}
    good = table["default"]
    assert good["layers_x_hidden"] == "1x16" and good["status"] == "finished"
    assert int(good["size"]) == listed["default"]["size"]
    assert int(good["params"]) == listed["default"]["params"]
    assert good["saved"] == listed["default"]["saved"]
    assert table["half"]["status"] == table["empty"]["status"] == "broken"
    # awk's default field splitting agrees
    assert [line.split() for line in proc.out.splitlines()] == rows


@pytest.mark.parametrize("columns", ["160", "40"])
def test_models_on_a_terminal_is_a_table_with_size_and_status(columns, trained, tmp_path):
    """A table with sizes for people; on a narrow terminal its cells are never cut short."""
    home = broken_store(trained, tmp_path)
    master, slave = pty.openpty()
    env = dict(os.environ, WORDLSTM_HOME=str(home), NO_COLOR="1", COLUMNS=columns)
    proc = subprocess.run([sys.executable, "-m", "wordlstm", "models"], stdout=slave,
                          stderr=subprocess.PIPE, env=env, timeout=60)  # fmt: skip
    os.close(slave)
    out = os.read(master, 65536).decode()
    os.close(master)
    assert proc.returncode == 0, proc.stderr
    lines = out.splitlines()
    assert "layers x hidden" in lines[0] and "size" in lines[0] and "status" in lines[0]
    assert re.search(r"default .*1x16 .* \d+(\.\d)? ?[kM]?B .*finished", out), out
    assert re.search(r"half .*broken", out), out
    assert "…" not in out


def test_a_finished_run_keeps_its_resume_state_so_more_epochs_go_on(trained, tmp_path, corpus):
    """The rule: the resume state (training.json, training.npz) stays in the model folder
    after a run, finished or not, so that `--resume` with a larger --epochs trains further."""
    home = tmp_path / "store"
    shutil.copytree(trained, home)
    assert (home / "default" / "training.json").is_file()
    assert (home / "default" / "training.npz").is_file()
    proc = run("train", str(corpus), *TINY, "--epochs", "4", "--resume", "--json", home=home)
    assert proc.returncode == 0, proc.err
    assert json.loads(proc.out)["epochs"] == 4
    assert proc.err.count("valid ppl") == 1  # only epoch 4 was trained


@pytest.mark.parametrize("command", ["train", "complete", "score", "eval", "models"])
def test_dash_h_is_help_with_an_example(command):
    proc = run(command, "-h")
    assert proc.returncode == 0 and proc.out.startswith("Usage: ")
    assert proc.out == run(command, "--help").out
    assert re.search(r"^\s*Examples:$", proc.out, re.M), proc.out
    assert re.search(rf"^\s+wordlstm {command}\b", proc.out, re.M), proc.out


def test_models_subcommands_have_dash_h_and_an_example():
    for sub in ("show", "rm"):
        proc = run("models", sub, "-h")
        assert proc.returncode == 0 and re.search(rf"^\s+wordlstm models {sub}\b", proc.out, re.M)
    assert run("-h").out == run("--help").out


def test_shell_completion_is_offered():
    assert "--install-completion" in run("--help").out
    proc = run("--show-completion", "bash")
    assert proc.returncode == 0 and "complete" in proc.out and "wordlstm" in proc.out.lower()


@pytest.mark.parametrize("no_color", ["1", ""])
def test_no_color_turns_off_colour_but_not_the_progress_bar(no_color, home, corpus):
    """NO_COLOR set to anything but empty: no colour, the bar still drawn; empty: unset."""
    code, _, terminal = run_on_terminal(
        "train", str(corpus), *TINY, "--epochs", "2", home=home,
        env={"NO_COLOR": no_color, "TERM": "xterm-256color"},
    )  # fmt: skip
    assert code == 0, terminal
    assert "tok/s" in terminal.split("vocabulary")[-1].split("epoch   1 |")[0]  # the bar
    assert bool(ANSI_COLOUR.search(terminal)) == (no_color == "")


def test_eval_shows_progress_on_a_terminal(trained, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text("The cat sat on the mat.\nI like green tea in the morning.\n" * 3000)
    code, out, terminal = run_on_terminal("eval", str(text), home=trained)
    assert code == 0, terminal
    assert "perplexity" in out
    done = re.findall(r"([\d,]+)/([\d,]+) tokens", terminal)
    assert done, terminal
    assert {t for _, t in done} == {re.search(r"tokens\s+([\d,]+)", out)[1]}
    # and nothing but the result when stderr is not a terminal
    assert run("eval", str(text), home=trained).err == ""


def test_complete_from_stdin_heads_each_block_with_its_prompt(trained):
    proc = run("complete", "--top", "2", input="The cat\nI like\n", home=trained)
    assert proc.returncode == 0, proc.err
    blocks = proc.out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["> The cat", "> I like"]
    assert all(len(b.strip().splitlines()) == 3 for b in blocks)
    single = run("complete", "The cat", "--top", "2", home=trained)
    assert single.out == "\n".join(blocks[0].splitlines()[1:]) + "\n"  # an argument: no header
    named = run("complete", "--top", "2", input="The cat\nxyzzy sat\n", home=trained)
    assert named.err == "line 2: unknown words: xyzzy\n"  # which prompt lacks the word


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_max_time_must_be_positive(value, home, corpus):
    proc = run("train", str(corpus), "--max-time", value, home=home)
    assert proc.returncode == 2
    assert proc.err == "error: --max-time must be a positive number of seconds\n"
    assert not home.exists() or not any(home.iterdir())
