"""benchmarks/longrange.py, the harness that measures long-range learning seed by seed: its
accuracy is what `wordlstm complete` says about the same prompts, and a quick run writes its
table and keeps one row per recipe, corpus, seed and budget."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("longrange", ROOT / "benchmarks" / "longrange.py")
longrange = sys.modules["longrange"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(longrange)

SMALL = ["--embed", "16", "--hidden", "16", "--layers", "1", "--batch-size", "32"]


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory):
    """A store with a tiny model trained for 2 epochs on 2,000 probe sentences."""
    root = tmp_path_factory.mktemp("probe")
    text = root / "probe.txt"
    sentences = longrange.generator("probe").generate(0, 2000)
    text.write_text("".join(s.text + "\n" for s in sentences), encoding="utf-8")
    run("train", str(text), *SMALL, "--epochs", "2", "--model", "p", home=root, check=True)
    return root


def test_held_out_pairs_are_not_in_the_training_text():
    pairs = longrange.held_out("probe", 300)
    seen = {p for p, _, _ in longrange.generator("probe").pairs(0, 8000)}
    assert len(pairs) == 300 and not seen & {p[0] for p in pairs}
    assert {kind for *_, kind in pairs} == {"tense", "number"}


def test_held_out_pairs_of_the_holdout_generator_are_of_one_kind():
    pairs = longrange.held_out("holdout", 100)
    seen = {p for p, _, _ in longrange.generator("holdout").pairs(0, 5000)}
    assert len(pairs) == 100 and not seen & {p[0] for p in pairs}
    assert {kind for *_, kind in pairs} == {""}


def test_right_share_is_what_complete_says(probe_model):
    """Per pair, right means `complete --json` gives the right verb a higher probability
    than the wrong one; swapping right and wrong gives the rest of the pairs."""
    pairs = longrange.held_out("probe", 200)
    shares = longrange.right_shares(str(probe_model / "p"), pairs)
    prompts = "".join(p[0] + "\n" for p in pairs)
    proc = run("complete", "--model", "p", "--top", "1000", "--json", input=prompts,
               home=probe_model, check=True)  # fmt: skip
    right: dict[str, list[bool]] = {"tense": [], "number": []}
    for line, (_, verb, wrong, kind) in zip(proc.out.splitlines(), pairs, strict=True):
        probs = {n["word"]: n["prob"] for n in json.loads(line)["next"]}
        right[kind].append(probs[verb] > probs[wrong])
    everything = right["tense"] + right["number"]
    assert shares[""] == sum(everything) / len(pairs)
    for kind, oks in right.items():
        assert shares[kind] == sum(oks) / len(oks)
    swapped = [(p, wrong, verb, kind) for p, verb, wrong, kind in pairs]
    assert longrange.right_shares(str(probe_model / "p"), swapped)[""] == 1 - shares[""]


def test_a_quick_run_writes_the_table_with_its_command(tmp_path):
    out = tmp_path / "longrange.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "longrange.py"), "--corpora", "probe",
           "--seeds", "3", "--max-time", "2", "--extra", "--hidden 8 --layers 1",
           "--held-out", "50", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "longrange.json").read_text())
    assert [(r["corpus"], r["seed"], r["flags"], r["pairs"]) for r in rows] == [
        ("probe", 3, "--hidden 8 --layers 1", 50)
    ]
    assert 0 <= rows[0]["accuracy"] <= 1 and rows[0]["epochs"] >= 1
    assert set(rows[0]["by_kind"]) == {"tense", "number"}
    table = out.read_text()
    assert "`wordlstm train probe.txt --max-time 2 --seed 3 --model probe-3 --hidden 8 " in table
    assert "| `--hidden 8 --layers 1` | probe | 2 s | 1 |" in table


def test_a_row_measured_again_takes_the_place_of_the_old_one():
    def row(seed, accuracy, max_time=180.0):
        return longrange.Row("", "demo", seed, max_time, accuracy, {}, 10, 1, 1, 20.0, 2.0, 1.0,
                             "cmd", "date")  # fmt: skip

    rows = [row(1, 0.5), row(2, 0.5), row(1, 0.5, max_time=20.0)]
    again = longrange.replaced(rows, row(1, 0.9))
    assert [(r.seed, r.accuracy, r.max_time) for r in again] == [
        (1, 0.9, 180.0), (2, 0.5, 180.0), (1, 0.5, 20.0)
    ]  # fmt: skip
    assert len(longrange.replaced(rows, row(3, 0.9))) == 4
