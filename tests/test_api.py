"""The Python API (`wordlstm.api`), and the command line as a thin layer over it."""

import ast
import subprocess
import sys

import pytest
from conftest import ROOT, run

import wordlstm
from wordlstm import api
from wordlstm.errors import SettingError

# presentation, which the CLI may import beside the API: the interactive line's screen,
# explain's heat maps and page, the learning curve's drawing, score --color's bands
RENDERERS = {
    "wordlstm.suggest",
    "wordlstm.render_explain",
    "wordlstm.render_curve",
    "wordlstm.render_rank",
}
UI_MODULES = {"wordlstm.api", *RENDERERS}
TRAINING = ("wordlstm.training", "wordlstm.trainjob", "wordlstm.finetune", "wordlstm.resume")
THIRD_PARTY_UI = {"typer", "rich"}


def imported_modules(path) -> set[str]:
    """Every module a source file imports, anywhere in it (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.add(base)
            if base == "wordlstm":  # `from wordlstm import api`: the submodules named
                names |= {f"wordlstm.{a.name}" for a in node.names if a.name != "__version__"}
    return names


def test_cli_imports_only_the_public_api_typer_rich_and_the_standard_library():
    names = imported_modules(ROOT / "wordlstm" / "cli.py")
    ours = {n for n in names if n.split(".")[0] == "wordlstm"} - {"wordlstm"}
    assert ours <= UI_MODULES, ours - UI_MODULES
    others = {n.split(".")[0] for n in names} - {"wordlstm"}
    outside = others - THIRD_PARTY_UI - set(sys.stdlib_module_names)
    assert not outside, outside


@pytest.mark.parametrize("module", sorted(RENDERERS))
def test_the_cli_s_renderers_import_no_training_module(module):
    code = f"import sys, {module}; print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert module in loaded.stdout.decode().split()
    assert not set(loaded.stdout.decode().split()) & set(TRAINING)


def test_the_import_check_sees_a_core_import():
    """The check above can fail: a core module imported inside a function is seen."""
    source = ROOT / "wordlstm" / "cli.py"
    names = imported_modules(source)
    assert "wordlstm.api" in names and "typer" in names and "rich.console" in names


def test_load_and_predict_through_the_package(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    m = wordlstm.load("default")
    best = m.next_words("The cat sat on the", top=3)
    assert len(best) == 3 and all(isinstance(p, api.Prediction) for p in best)
    assert [p.prob for p in best] == sorted((p.prob for p in best), reverse=True)
    cli = run("complete", "The cat sat on the", "--top", "3", home=trained, check=True)
    assert [line.split("\t")[0] for line in cli.out.splitlines()] == [p.word for p in best]


def test_api_results_match_the_cli(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    m = wordlstm.load("default")
    text = m.continue_text("The dog", words=3)
    cli = run("complete", "The dog", "--words", "3", "--top", "0", home=trained, check=True)
    assert cli.out.strip() == text
    (s,) = m.score(["The dog sat on the rug."])
    cli = run("score", input="The dog sat on the rug.\n", home=trained, check=True)
    assert cli.out.split("\t")[1] == f"{s.log_prob:.4f}"
    beams = m.beam("The", width=2, words=3)
    assert len(beams) == 2 and beams[0].log_prob >= beams[1].log_prob
    assert all(b.continued.startswith("The ") for b in beams)


def test_evaluate_returns_the_figures_of_eval_json(trained, corpus, monkeypatch):
    import json

    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    figures = wordlstm.load("default").evaluate(str(corpus), keyboard=False)
    cli = run("eval", str(corpus), "--json", "--no-keyboard", home=trained, check=True)
    assert json.loads(cli.out) == figures.to_dict()


@pytest.mark.parametrize(
    "settings, fields",
    [
        ({"lr": -1.0}, ["lr", "clip"]),
        ({"epochs": 0}, ["epochs", "bptt", "batch_size"]),
        ({"dropout_input": 1.5}, ["dropout_input"]),
        ({"tied": True, "embed": 3, "hidden": 4}, ["tied", "embed", "hidden"]),
    ],
)
def test_train_settings_errors_name_fields_and_the_cli_names_flags(
    tmp_path, corpus, settings, fields
):
    with pytest.raises(SettingError) as e:
        wordlstm.train([str(corpus)], model=str(tmp_path / "m"), **settings)
    assert e.value.fields == fields
    assert "--" not in str(e.value) and fields[0] in str(e.value)
    args = [
        f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
        for k, v in settings.items()
    ]
    proc = run("train", str(corpus), "--model", str(tmp_path / "m"), *args)
    assert proc.returncode == 2
    assert proc.err.strip() == "error: " + e.value.worded(lambda f: "--" + f.replace("_", "-"))


def test_the_package_train_is_the_api_function_after_the_trainer_is_imported():
    import wordlstm.training  # noqa: F401  (a submodule named `train` would shadow it)

    assert wordlstm.train is api.train


def test_complete_options_are_checked_by_field():
    with pytest.raises(SettingError) as e:
        api.CompleteOptions(words=2, beam=2, sample=True)
    assert str(e.value) == "beam and sample exclude each other"
    with pytest.raises(SettingError, match="top_p must be in"):
        api.CompleteOptions(sample=True, top_p=0)


def test_a_missing_model_is_the_cli_message(tmp_path, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(tmp_path))
    with pytest.raises(api.BadInput) as e:
        wordlstm.load("nothing")
    proc = run("complete", "x", "--model", "nothing", home=tmp_path)
    assert proc.err.strip() == f"error: {e.value}"


def test_models_and_show(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    rows = wordlstm.models()
    assert [r.name for r in rows] == ["default"] and rows[0].status == "finished"
    details = wordlstm.show("default")
    assert details.params == rows[0].params and details.resume_command is None


def test_importing_wordlstm_has_no_side_effects_on_the_process():
    """No module below the CLI runs a call at import (such as backend's mallopt): module
    bodies are definitions and assignments only. (cli.py builds its typer app.)"""
    for path in sorted((ROOT / "wordlstm").glob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
                pytest.fail(f"{path.name}:{node.lineno} runs {ast.unparse(node)[:60]} at import")


def test_complete_word_finishes_the_word_being_typed(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    words = [p.word for p in wordlstm.load("default").complete_word("The ca", top=3)]
    assert words and all(w.lower().startswith("ca") for w in words)


def test_all_names_the_api():
    assert all(hasattr(api, name) for name in api.__all__)
    public = {n for n, v in vars(api).items() if not n.startswith("_") and callable(v)}
    assert {"load", "train", "Model", "Continuation", "Prediction"} <= set(api.__all__) & public


def test_explain_and_attribute_are_what_the_cli_shows(trained, monkeypatch):
    import json

    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    m = wordlstm.load("default")
    e = m.explain("The cat sat on the", units=2)
    a = m.attribute("The cat sat on the", "rug", other="mat")
    args = ["explain", "The cat sat on the", "--units", "2", "--why", "rug", "--against", "mat"]
    doc = json.loads(run(*args, "--json", home=trained, check=True).out)
    assert doc["tokens"] == e.tokens == a.tokens and len(e.changing) == 2
    assert doc["layers"][0]["f"] == e.layers[0].f.tolist()
    assert doc["why"]["gradient_x_input"] == a.gradient_x_input.tolist()
    assert doc["why"]["target"] == a.target


def test_a_negative_units_names_the_field_here_and_the_flag_in_the_cli(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    with pytest.raises(SettingError) as e:
        wordlstm.load("default").explain("The cat", units=-1)
    assert e.value.fields == ["units"] and "--" not in str(e.value)
    proc = run("explain", "The cat", "--units", "-1", home=trained)
    assert proc.returncode == 2 and proc.err.strip() == "error: --units must not be negative"


def test_token_texts_rebuild_the_line_as_the_tokenizer_spaces_it(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    m = wordlstm.load("default")
    (s,) = m.score(["The cat sat on the mat."], per_token=True)
    texts = m.token_texts(t.id for t in s.token_scores)
    assert "".join(texts) == "The cat sat on the mat." and texts[-1] == ""
    assert [t.rank >= 0 for t in s.token_scores] == [True] * len(texts)


def test_the_learning_curve_comes_with_the_model_s_details(trained, monkeypatch):
    monkeypatch.setenv("WORDLSTM_HOME", str(trained))
    details = api.show("default")
    history = details.config["history"]
    assert details.curve.valid == [e["valid_ppl"] for e in history]
    assert details.curve.train == [e["train_ppl"] for e in history]


def test_check_gradients_passes_every_parameter():
    checks = api.check_gradients()
    assert len(checks) == 11 and all(c.passed for c in checks)
