"""The adaptive softmax: exact probabilities over the whole vocabulary, the full softmax's
arithmetic when it has no cluster, gradients that agree with finite differences over two BPTT
chunks, and `train --softmax adaptive` with score, complete, eval, show and continue through
the CLI (exact resume: tests/test_resume.py's "sgd, adaptive" setup)."""

import json
import shutil

import numpy as np
import pytest
from conftest import TINY, assert_one_error_line, max_difference, run
from safetensors.numpy import load_file

from wordlstm import adaptive, api, gradcheck, settings, softmax
from wordlstm.checkpoint import load_model
from wordlstm.errors import SettingError
from wordlstm.model import Architecture, LanguageModel
from wordlstm.optim import dense
from wordlstm.settings import ADAPTIVE_FROM, ModelSettings

CUTOFFS = ["--softmax", "adaptive", "--cutoffs", "5,15"]  # head 5 words, clusters 10 and 19


def model_of(vocab=300, cutoffs=(20, 60, 150), tied=False, softmax="adaptive", seed=0):
    arch = Architecture(
        vocab=vocab,
        embed=12,
        hidden=12,
        layers=1,
        tied=tied,
        softmax=softmax,
        cutoffs=cutoffs,
        div_value=2.0,
    )
    return LanguageModel.init(arch, np.random.default_rng(seed), dtype=np.float64)


def rows_and_targets(model, n=40, seed=1):
    rng = np.random.default_rng(seed)
    out = rng.normal(0, 2, (n, model.arch.hidden))
    return out, rng.integers(0, model.arch.vocab, n)


@pytest.mark.parametrize("tied", [False, True])
def test_probabilities_over_the_whole_vocabulary_sum_to_one(tied):
    model = model_of(tied=tied)
    for p in model.params.values():  # off the initial scale: far from uniform
        p *= 5
    out, _ = rows_and_targets(model)
    probs = np.exp(model.log_probs(out))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert probs.max() > 0.2  # not the uniform distribution that would sum to 1 anyway


def test_score_ranks_and_loss_agree_with_the_whole_rows():
    model = model_of()
    out, y = rows_and_targets(model)
    whole = model.log_probs(out)
    true = whole[np.arange(len(y)), y]
    assert {int(c) for c in np.searchsorted((20, 60, 150), y, "right")} == {0, 1, 2, 3}
    log_probs, none = model.score(out, y)
    np.testing.assert_allclose(log_probs, true, rtol=0, atol=1e-12)
    assert none is None
    ranked, ranks = model.score(out, y, ranks=True)
    np.testing.assert_allclose(ranked, true, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ranks, (whole > true[:, None]).sum(axis=1))
    assert model.loss(out, y)[0] == pytest.approx(-true.mean(), abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_with_no_cluster_it_is_the_full_softmax(tied):
    """Cut-offs none: a head of every word, whose weight and bias are the decoder's."""
    full = model_of(tied=tied, softmax="full", cutoffs=())
    weights = full.weights()
    weights["adaptive.head.weight"] = weights.pop("decoder.weight")
    weights["adaptive.head.bias"] = weights.pop("decoder.bias")
    one = LanguageModel.from_weights(
        Architecture(**{**full.arch.to_dict(), "softmax": "adaptive"}), weights
    )
    full = LanguageModel.from_weights(full.arch, full.weights())  # float32, as `one`
    out, y = rows_and_targets(full)
    out = out.astype(np.float32)
    np.testing.assert_allclose(one.log_probs(out), full.log_probs(out), rtol=0, atol=1e-5)
    np.testing.assert_allclose(one.score(out, y)[0], full.score(out, y)[0], rtol=0, atol=1e-5)
    (loss_1, dout_1, grads_1), (loss_f, dout_f, grads_f) = one.loss(out, y), full.loss(out, y)
    assert loss_1 == pytest.approx(loss_f, abs=1e-6)
    np.testing.assert_allclose(dout_1, dout_f, rtol=0, atol=1e-7)
    np.testing.assert_allclose(grads_1["adaptive.head.bias"], grads_f["decoder.bias"], atol=1e-7)
    name = "encoder.weight" if tied else "adaptive.head.weight"
    decoder = grads_f["encoder.weight" if tied else "decoder.weight"]
    np.testing.assert_allclose(dense(grads_1[name]), decoder, rtol=0, atol=1e-7)


@pytest.mark.parametrize("tied, div_value", [(False, 2.0), (True, 2.0), (True, 1.0)])
def test_every_gradient_agrees_with_finite_differences_over_two_chunks(tied, div_value):
    """Div 1 with tied weights: the clusters' outputs are the embedding's rows, no arrays of
    their own, their gradient in the embedding's."""
    problem = gradcheck.tiny_problem(
        tied, gradcheck.ALL_REGULARISERS, softmax="adaptive", div_value=div_value
    )
    targets = np.concatenate([y.ravel() for _, y in problem.chunks])
    assert set(np.searchsorted((3, 5), targets, "right")) == {0, 1, 2}  # the head and both
    checks = gradcheck.check(problem)
    names = {c.name for c in checks}
    assert {"adaptive.head.bias", "adaptive.tail.1.0.weight", "encoder.weight"} <= names
    assert ("adaptive.head.clusters" if tied else "adaptive.head.weight") in names
    assert ("adaptive.tail.1.1.weight" in names) == (div_value != 1.0)
    assert [c.name for c in checks if not c.passed] == []


def test_a_wrong_derivative_in_a_cluster_fails_the_check(monkeypatch):
    right = softmax.cross_entropy

    def wrong(decoder, out, targets, cells):  # the clusters' gradient 10% too large
        loss, dout, d_block = right(decoder, out, targets, cells)
        if out.shape[1] < 4:  # a cluster's projection, not the head's input
            dout *= 1.1
        return loss, dout, d_block

    monkeypatch.setattr(adaptive.softmax, "cross_entropy", wrong)
    problem = gradcheck.tiny_problem(regularisers=gradcheck.ALL_REGULARISERS, softmax="adaptive")
    failed = {c.name for c in gradcheck.check(problem) if not c.passed}
    assert {"adaptive.tail.0.0.weight", "rnn.weight_hh_l1"} <= failed


def test_the_cli_gradcheck_of_the_adaptive_softmax_passes():
    proc = run("gradcheck", "--softmax", "adaptive", "--tied", check=True)
    assert "adaptive.tail.1.1.weight" in proc.out
    assert proc.out.splitlines()[-1].startswith("all 15 parameters within")


def test_default_cutoffs_grow_by_fives_up_to_half_the_vocabulary():
    assert adaptive.default_cutoffs(3_999) == ()
    assert adaptive.default_cutoffs(14_000) == (2_000,)
    assert adaptive.default_cutoffs(100_000) == (2_000, 10_000, 50_000)
    assert ModelSettings(softmax="adaptive").split(100_000) == (2_000, 10_000, 50_000)
    assert ModelSettings(softmax="adaptive", cutoffs=[7]).split(100_000) == (7,)
    assert ModelSettings(softmax="full").split(100_000) == ()


def test_auto_takes_the_adaptive_softmax_from_adaptive_from_words_where_it_fits():
    auto = ModelSettings()
    assert auto.softmax == "auto"
    below, at = ADAPTIVE_FROM - 1, ADAPTIVE_FROM
    assert (auto.softmax_for(below), auto.split(below)) == ("full", ())
    assert (auto.softmax_for(at), auto.split(at)) == ("adaptive", adaptive.default_cutoffs(at))
    # a hidden size that the default split would leave no projection unit keeps the full one
    assert ModelSettings(hidden=2, embed=2).softmax_for(10 * ADAPTIVE_FROM) == "full"
    assert ModelSettings(softmax="full").softmax_for(10 * ADAPTIVE_FROM) == "full"
    assert ModelSettings(softmax="adaptive").softmax_for(10) == "adaptive"


def test_auto_trains_an_adaptive_model_from_the_threshold_and_resumes_exactly(
    home, corpus, monkeypatch
):
    """With the threshold at the corpus's vocabulary, the default settings train an adaptive
    model (its default split), record it, and a resumed run matches a straight one."""
    monkeypatch.setattr(settings, "ADAPTIVE_FROM", 34)  # the corpus's 32 words, <unk>, <eos>
    monkeypatch.setattr(adaptive, "FIRST_CUTOFF", 8)  # a split a 34-word vocabulary can have
    monkeypatch.setenv("WORDLSTM_HOME", str(home))
    tiny = {"hidden": 16, "embed": 16, "layers": 1, "bptt": 5, "batch_size": 2}
    tiny |= {"average": False, "dropout": 0.0}
    api.train([str(corpus)], "whole", epochs=2, **tiny)
    api.train([str(corpus)], "part", epochs=1, **tiny)
    api.train([str(corpus)], "part", epochs=2, resume=True, **tiny)
    for name in ("whole", "part"):
        arch = json.loads((home / name / "config.json").read_text())["architecture"]
        assert (arch["vocab"], arch["softmax"], arch["cutoffs"]) == (34, "adaptive", [8])
    assert max_difference(home / "part", home / "whole") == 0.0
    monkeypatch.setattr(settings, "ADAPTIVE_FROM", 35)
    api.train([str(corpus)], "below", epochs=1, **tiny)
    arch = json.loads((home / "below" / "config.json").read_text())["architecture"]
    assert "softmax" not in arch  # the full softmax records no adaptive fields


@pytest.mark.parametrize(
    "settings, fields",
    [
        ({"softmax": "sampled"}, ["softmax"]),
        ({"cutoffs": [10]}, ["cutoffs", "softmax"]),
        ({"softmax": "adaptive", "cutoffs": [10, 10]}, ["cutoffs"]),
        ({"softmax": "adaptive", "cutoffs": [0, 10]}, ["cutoffs"]),
        ({"softmax": "adaptive", "div_value": 0.5}, ["div_value"]),
        ({"softmax": "adaptive", "cutoffs": [5, 9], "hidden": 8}, ["hidden", "div_value"]),
    ],
)
def test_bad_settings_name_their_fields(settings, fields):
    with pytest.raises(SettingError) as e:
        ModelSettings(**settings)
    assert set(fields) <= set(e.value.fields)


def test_cutoffs_must_be_below_the_vocabulary():
    with pytest.raises(SettingError, match="below the vocabulary's size 30") as e:
        Architecture(
            vocab=30, embed=8, hidden=8, layers=1, softmax="adaptive", cutoffs=(5, 30), div_value=2
        )
    assert e.value.fields == ["cutoffs"]


def test_new_words_join_the_last_cluster_and_the_old_ones_keep_their_rows():
    model = model_of(tied=True)
    grown = model.with_vocab(310, np.random.default_rng(3))
    assert grown.arch.cutoffs == (20, 60, 150)
    assert grown.params["adaptive.tail.2.1.weight"].shape == (160, 1)  # 12 / 2^3
    old = {n: a.astype(np.float32) for n, a in model.weights().items()}  # as loaded
    new = grown.weights()
    np.testing.assert_array_equal(
        new["adaptive.tail.2.1.weight"][:150], old["adaptive.tail.2.1.weight"]
    )
    np.testing.assert_array_equal(new["encoder.weight"][:300], old["encoder.weight"])
    out, _ = rows_and_targets(grown)
    np.testing.assert_allclose(np.exp(grown.log_probs(out)).sum(axis=1), 1.0, atol=1e-5)


# Through the command line


@pytest.fixture(scope="module")
def adaptive_home(tmp_path_factory, corpus):
    home = tmp_path_factory.mktemp("adaptive") / "store"
    run("train", str(corpus), *TINY, "--epochs", "3", *CUTOFFS, home=home, check=True)
    return home


def test_train_saves_the_split_in_config_json_and_the_weights_by_name(adaptive_home):
    folder = adaptive_home / "default"
    arch = json.loads((folder / "config.json").read_text())["architecture"]
    assert (arch["softmax"], arch["cutoffs"], arch["div_value"], arch["tied"]) == (
        "adaptive", [5, 15], 4.0, True
    )  # fmt: skip
    weights = load_file(folder / "model.safetensors")
    V = arch["vocab"]
    assert weights["adaptive.head.weight"].shape == (5 + 2, 16)  # 5 words, 2 cluster tokens
    assert weights["adaptive.tail.0.0.weight"].shape == (4, 16)  # 16 / 4
    assert weights["adaptive.tail.1.0.weight"].shape == (1, 16)  # 16 / 4^2
    assert weights["adaptive.tail.1.1.weight"].shape == (V - 15, 1)
    assert "decoder.weight" not in weights
    # tied: the head's word rows are the embedding's
    np.testing.assert_array_equal(
        weights["adaptive.head.weight"][:5], weights["encoder.weight"][:5]
    )
    loaded = api.load(str(folder))
    assert loaded.config["architecture"] == arch
    # the trained float32 model's distributions, whole, sum to 1 too
    model = load_model(str(folder)).model
    out, _, _ = model.forward(np.array([[1, 7, 20, 30]]).T, model.zero_state(1))
    probs = np.exp(model.log_probs(out).astype(np.float64))
    assert probs.shape == (4, V)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)


def test_tied_clusters_of_div_1_save_the_embedding_rows_and_grow_with_it(home, corpus, tmp_path):
    """With div 1 and tied weights each cluster's output rows are the embedding's rows of its
    words, saved whole under the cluster's name, and still so after the vocabulary grows."""
    args = [*TINY, *CUTOFFS, "--div-value", "1", "--tied", "--epochs", "2"]
    run("train", str(corpus), *args, home=home, check=True)
    text = tmp_path / "new.txt"
    text.write_text("The owl sat on the branch.\n" * 60)
    shutil.copytree(home / "default", home / "grown")
    run("train", str(text), "--model", "grown", "--continue", "--grow-vocab", "--epochs", "1",
        home=home, check=True)  # fmt: skip
    for name in ("default", "grown"):
        folder = home / name
        arch = json.loads((folder / "config.json").read_text())["architecture"]
        weights = load_file(folder / "model.safetensors")
        V, edges = arch["vocab"], [5, 15, arch["vocab"]]
        for i in range(2):
            np.testing.assert_array_equal(
                weights[f"adaptive.tail.{i}.1.weight"],
                weights["encoder.weight"][edges[i] : edges[i + 1]],
            )
        model = load_model(str(folder)).model
        out, _, _ = model.forward(np.array([[1, 7, 20]]).T, model.zero_state(1))
        probs = np.exp(model.log_probs(out).astype(np.float64))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)
        assert probs.shape[1] == V
    assert json.loads((home / "grown" / "config.json").read_text())["architecture"]["vocab"] > 34


def test_score_complete_and_show_read_the_adaptive_model(adaptive_home):
    text = "The cat sat on the mat.\n"
    scored = run("score", "--json", "--per-token", input=text, home=adaptive_home, check=True)
    tokens = json.loads(scored.out)["token_log_probs"]
    assert len(tokens) == 8 and all(-30 < t["log_prob"] < 0 for t in tokens)
    # the model learnt the corpus: "mat" after "The cat sat on the" beats a uniform guess
    assert tokens[5]["log_prob"] > np.log(1 / 34)
    complete = run("complete", "--json", input="The cat sat on the\n", home=adaptive_home)
    assert complete.returncode == 0, complete.err
    words = json.loads(complete.out)["next"]
    assert len(words) == 5 and all(0 < w["prob"] <= 1 for w in words)
    assert [w["prob"] for w in words] == sorted((w["prob"] for w in words), reverse=True)
    shown = run("models", "show", "default", home=adaptive_home, check=True)
    assert "adaptive softmax (cut-offs 5, 15; div 4.0)" in shown.out


def test_eval_of_the_adaptive_model_counts_ranks_from_whole_rows(adaptive_home, corpus):
    proc = run("eval", str(corpus), "--json", home=adaptive_home, check=True)
    metrics = json.loads(proc.out)
    assert 1 < metrics["perplexity"] < 34  # learnt something, within the vocabulary
    assert 0 < metrics["top1"] <= metrics["top5"] <= 1
    assert 0 < metrics["keystroke_savings"] < 1


def test_softmax_adaptive_alone_trains_with_the_default_tying(home, corpus):
    run(
        "train", str(corpus), *TINY, "--epochs", "1", "--softmax", "adaptive", home=home, check=True
    )
    arch = json.loads((home / "default" / "config.json").read_text())["architecture"]
    assert arch["tied"] is True and arch["cutoffs"] == []  # 34 words: under 4,000, no cluster


def test_a_full_softmax_model_records_no_adaptive_fields(trained):
    arch = json.loads((trained / "default" / "config.json").read_text())["architecture"]
    assert set(arch) == {"vocab", "embed", "hidden", "layers", "tied"}


def test_continue_keeps_the_split_and_grows_the_last_cluster(adaptive_home, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(adaptive_home / "default", folder)
    text = tmp_path / "new.txt"
    text.write_text("The owl sat on the branch.\n" * 60)
    run("train", str(text), "--model", str(folder), "--continue", "--grow-vocab", "--epochs", "1",
        home=adaptive_home, check=True)  # fmt: skip
    arch = json.loads((folder / "config.json").read_text())["architecture"]
    assert arch["softmax"] == "adaptive" and arch["cutoffs"] == [5, 15] and arch["vocab"] == 36
    assert load_file(folder / "model.safetensors")["adaptive.tail.1.1.weight"].shape == (36 - 15, 1)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--softmax", "adaptive", "--cutoffs", "5,3"], ["--cutoffs must increase"]),
        (["--softmax", "adaptive", "--cutoffs", "5,300"], ["--cutoffs", "below", "34"]),
        (["--cutoffs", "5"], ["--cutoffs go with --softmax adaptive"]),
        (["--softmax", "adaptive", "--cutoffs", "5,x"], ["--cutoffs", "2000,10000"]),
        (["--softmax", "tree"], ["--softmax must be one of auto, full, adaptive"]),
    ],
)
def test_bad_flags_are_one_error_line(home, corpus, flags, words):
    proc = run("train", str(corpus), *TINY, "--epochs", "1", *flags, home=home)
    assert_one_error_line(proc, 2, *words)
    assert not (home / "default").exists()


def test_a_damaged_split_in_config_json_is_one_error_line(adaptive_home, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(adaptive_home / "default", folder)
    config = json.loads((folder / "config.json").read_text())
    config["architecture"]["cutoffs"] = [5.5, 15]
    (folder / "config.json").write_text(json.dumps(config))
    proc = run("score", "--model", str(folder), input="The cat.\n")
    assert_one_error_line(proc, 2, "bad or missing architecture")


def test_resume_through_the_cli_takes_the_split_from_the_run_and_is_exact(home, corpus):
    """A run of 1 epoch resumed to 2 (its flags read back from the folder, cut-offs included)
    ends with the weights of a 2-epoch run."""
    args = [*TINY, *CUTOFFS, "--no-average"]
    run("train", str(corpus), *args, "--epochs", "2", "--model", "whole", home=home, check=True)
    run("train", str(corpus), *args, "--epochs", "1", "--model", "part", home=home, check=True)
    run("train", "--resume", "--epochs", "2", "--model", "part", home=home, check=True)
    assert max_difference(home / "part", home / "whole") == 0.0
    other = run("train", "--resume", "--epochs", "3", "--model", "part", "--cutoffs", "5,16",
                "--softmax", "adaptive", home=home)  # fmt: skip
    assert_one_error_line(other, 2, "--cutoffs 5,16 (the run used 5,15)")
