"""The saved weights, read with `safetensors.torch.load_file`, load into torch.nn.Embedding /
nn.LSTM / nn.Linear (or nn.AdaptiveLogSoftmaxWithLoss(head_bias=True), the adaptive softmax's)
unchanged and give the log-probabilities that `wordlstm score --json --per-token` prints.

Runs where PyTorch is installed (`pip install torch`) and is skipped elsewhere, except in CI
(CI=true), which installs it for this test alone (.ci/run): there a missing torch is an
error, not a skip. wordlstm never imports it.
"""

import json
import os

import numpy as np
import pytest
from conftest import TINY, run

if os.environ.get("CI", "").lower() in ("true", "1"):
    import torch  # CI must run the comparison: no torch there fails the collection
else:
    torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402  (needs torch)

SETUPS = {
    "untied": ["--no-tied"],
    "tied": ["--tied"],
    "adaptive": ["--no-tied", "--softmax", "adaptive", "--cutoffs", "5,15"],
    # tied, and the clusters' outputs too (projections as wide as the hidden layer)
    "adaptive tied": ["--tied", "--softmax", "adaptive", "--cutoffs", "5,15", "--div-value", "1"],
}


def decoder_of(arch: dict):
    """The torch module of the decoder and softmax, and the log-probabilities it gives."""
    if arch.get("softmax") == "adaptive":
        decoder = torch.nn.AdaptiveLogSoftmaxWithLoss(
            arch["hidden"], arch["vocab"], arch["cutoffs"], arch["div_value"], head_bias=True
        )
        return decoder, decoder.log_prob
    decoder = torch.nn.Linear(arch["hidden"], arch["vocab"])
    return decoder, lambda out: torch.log_softmax(decoder(out), dim=-1)


@pytest.mark.parametrize("setup", SETUPS)
def test_torch_gives_the_same_log_probs(home, corpus, setup):
    args = ["--layers", "2", *SETUPS[setup]]
    run("train", str(corpus), *TINY, *args, "--epochs", "2", home=home, check=True)
    folder = home / "default"
    config = json.loads((folder / "config.json").read_text())
    arch = config["architecture"]
    state = load_file(folder / "model.safetensors")  # as a PyTorch user loads it

    encoder = torch.nn.Embedding(arch["vocab"], arch["embed"])
    rnn = torch.nn.LSTM(arch["embed"], arch["hidden"], arch["layers"])
    decoder, log_prob = decoder_of(arch)
    prefix_of = {
        encoder: "encoder.",
        rnn: "rnn.",
        decoder: "adaptive." if setup.startswith("adaptive") else "decoder.",
    }
    for module, prefix in prefix_of.items():
        module.load_state_dict(
            {n[len(prefix) :]: t for n, t in state.items() if n.startswith(prefix)}, strict=True
        )

    text = "Last year, due to my job, I had a loan.\nThe dog sat on the mat.\n"
    proc = run("score", "--json", "--per-token", input=text, home=home, check=True)
    for line in proc.out.splitlines():
        scored = json.loads(line)["token_log_probs"]
        ids = [t["id"] for t in scored]
        eos = ids[-1]
        inputs = torch.tensor([eos] + ids[:-1]).unsqueeze(1)  # (T, 1), from the end of line
        with torch.no_grad():
            out, _ = rnn(encoder(inputs))
            logp = log_prob(out.squeeze(1))
        expected = logp[torch.arange(len(ids)), torch.tensor(ids)].numpy()
        got = np.array([t["log_prob"] for t in scored])
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        assert {i >= 5 for i in ids} == {True, False}  # adaptive: head and cluster words
