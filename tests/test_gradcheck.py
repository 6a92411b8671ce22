"""`wordlstm gradcheck`: the finite-difference check passes on the hand-written backward
and fails visibly when a derivative in it is wrong."""

import numpy as np
import pytest
from conftest import run

from wordlstm import gradcheck, lstm


def test_the_command_passes_and_prints_every_parameter():
    proc = run("gradcheck", check=True)
    lines = proc.out.splitlines()
    names = [line.split()[0] for line in lines[:-1]]
    assert names == list(
        gradcheck.tiny_problem(regularisers=gradcheck.ALL_REGULARISERS).model.params
    )
    assert all(line.split()[-1] == "PASS" for line in lines[:-1])
    assert lines[-1].startswith("all 11 parameters within")


def test_a_wrong_derivative_of_the_forget_gate_fails_the_check(monkeypatch):
    right_backward = lstm.backward

    def wrong_backward(dh_out, dh_last, dc_last, cache, w_ih, w_hh):
        # the derivatives through the forget gate taken at 0.9 f instead of f
        f = lstm.split_gates(cache.gates)[1]
        saved = f.copy()
        f *= 0.9
        try:
            return right_backward(dh_out, dh_last, dc_last, cache, w_ih, w_hh)
        finally:
            f[...] = saved

    monkeypatch.setattr(lstm, "backward", wrong_backward)
    checks = gradcheck.check(gradcheck.tiny_problem(regularisers=gradcheck.ALL_REGULARISERS))
    failed = {c.name for c in checks if not c.passed}
    assert {"rnn.weight_hh_l0", "rnn.bias_ih_l0"} <= failed
    assert max(c.error for c in checks) > 1e-3


def test_the_relative_error_is_scale_free():
    a = np.array([1.0, 2.0])
    assert gradcheck.relative_error(a, a) == 0.0
    assert gradcheck.relative_error(1e6 * a, 1e6 * (a + [0.0, 1e-3])) == pytest.approx(1e-3 / 4.001)
