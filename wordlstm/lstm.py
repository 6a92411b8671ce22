"""One LSTM layer over a chunk of T time steps: the forward pass and its backward pass.

Per step t, from the input x_t and the previous hidden state h_{t-1}:

    i_t = sigmoid(W_ii x_t + W_hi h_{t-1} + b_i)     input gate: how much to write
    f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f)     forget gate: how much of c_{t-1} to keep
    g_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g)        candidate values to write
    o_t = sigmoid(W_io x_t + W_ho h_{t-1} + b_o)     output gate: how much of the cell to show
    c_t = f_t * c_{t-1} + i_t * g_t                  the cell state, the long-term memory
    h_t = o_t * tanh(c_t)                            the hidden state, this step's output

The four gates are stacked as rows of one matrix in PyTorch's order i, f, g, o:
W_ih is 4H x in and W_hh is 4H x H, so one product gives all four gates at once. The
inputs of all T steps do not depend on h, so they are projected in a single product before
the time loop; only W_hh @ h_{t-1} is left inside it.

Arrays are feature-major, as in the equations: a layer's input is (in, T, B), one column per
token, and each step's gates are a (4H, B) block, one column per sequence, so each gate is a
contiguous block of rows. The backward pass's product in the time loop, W_hh.T @ dgates, then
has the weights on the left, which OpenBLAS runs faster than the same product with the
batch on the left (the forward's W_hh @ h_{t-1} runs as fast either way).

The backward pass is backpropagation through time: it walks the steps in reverse, carrying
dL/dh and dL/dc from step t+1 to step t, and keeps each step's gate gradients so that the
weight gradients are each one product after the loop. What does not depend on the
recursion (the gates' local derivatives) is computed for all steps at once before it.
"""

from dataclasses import dataclass

from wordlstm.backend import xp


def split_gates(a: "xp.ndarray") -> tuple:
    """Views of the i, f, g, o blocks of a (..., 4H, B) gate array."""
    H = a.shape[-2] // 4
    return a[..., :H, :], a[..., H : 2 * H, :], a[..., 2 * H : 3 * H, :], a[..., 3 * H :, :]


@dataclass
class LayerCache:
    """What the backward pass needs from the forward pass of one layer."""

    x: "xp.ndarray"  # (in, T, B) the layer's input
    gates: "xp.ndarray"  # (T, 4H, B) i, f, g, o after their nonlinearities
    h: "xp.ndarray"  # (H, T+1, B) h[:, 0] is the initial state, h[:, t+1] the output of step t
    c: "xp.ndarray"  # (T+1, H, B) c[0] the initial cell state, c[t+1] that after step t
    tanh_c: "xp.ndarray"  # (T, H, B) tanh(c_t)

    def state_after(self, steps: "xp.ndarray", columns: "xp.ndarray") -> tuple:
        """h and c, each (n, H), after step steps[j] of sequence columns[j] of the batch."""
        return self.h[:, steps + 1, columns].T, self.c[steps + 1, :, columns]


def forward(
    x: "xp.ndarray",
    h0: "xp.ndarray",
    c0: "xp.ndarray",
    w_ih: "xp.ndarray",
    w_hh: "xp.ndarray",
    bias: "xp.ndarray",
) -> tuple["xp.ndarray", LayerCache]:
    """Runs the layer over x (in, T, B) from state h0, c0 (B, H); returns h_1..h_T as (H, T, B)."""
    n_in, T, B = x.shape
    H = h0.shape[-1]
    half = sigmoid_rows_halved(H, x.dtype)  # the pre-activations `gates_via_one_tanh` takes
    projected = ((w_ih * half) @ x.reshape(n_in, T * B)).reshape(4 * H, T, B)
    # the inputs' share of every step's gates, plus the bias, laid out step by step as the
    # loop reads them (adding a step's strided slice of `projected` instead costs more)
    gates = xp.empty((T, 4 * H, B), dtype=x.dtype)
    xp.add(projected.transpose(1, 0, 2), bias[:, None] * half, out=gates)
    w_hh = w_hh * half
    h = xp.empty((H, T + 1, B), dtype=x.dtype)
    c = xp.empty((T + 1, H, B), dtype=x.dtype)
    tanh_c = xp.empty((T, H, B), dtype=x.dtype)
    recurrent = xp.empty((4 * H, B), dtype=x.dtype)
    h[:, 0], c[0] = h0.T, c0.T
    for t in range(T):
        z = gates[t]  # W_ih x_t + b, then + W_hh h_{t-1}: the four gates' pre-activations
        z += xp.matmul(w_hh, h[:, t], out=recurrent)
        i, f, g, o = gates_via_one_tanh(z)  # sigmoid, sigmoid, tanh, sigmoid
        c[t + 1] = f * c[t] + i * g
        xp.tanh(c[t + 1], out=tanh_c[t])
        h[:, t + 1] = o * tanh_c[t]
    return h[:, 1:], LayerCache(x, gates, h, c, tanh_c)


def sigmoid_rows_halved(H: int, dtype) -> "xp.ndarray":
    """(4H, 1) factors that halve the rows of i, f and o and keep g's: what the weights and
    the bias are scaled by for `gates_via_one_tanh`."""
    half = xp.full((4 * H, 1), 0.5, dtype=dtype)
    half[2 * H : 3 * H] = 1.0
    return half


def gates_via_one_tanh(z: "xp.ndarray") -> tuple:
    """i = sigmoid(z_i), f = sigmoid(z_f), g = tanh(z_g), o = sigmoid(z_o), in place in
    z (4H, B), whose rows of i, f and o hold z/2: since sigmoid(z) = (1 + tanh(z/2)) / 2,
    one tanh call over all four gates serves them all, cheaper than a tanh and an exp."""
    H = z.shape[0] // 4
    xp.tanh(z, out=z)
    for s in (z[: 2 * H], z[3 * H :]):  # i and f, then o
        s *= 0.5
        s += 0.5
    return split_gates(z)


def backward(
    dh_out: "xp.ndarray",
    dh_last: "xp.ndarray",
    dc_last: "xp.ndarray",
    cache: LayerCache,
    w_ih: "xp.ndarray",
    w_hh: "xp.ndarray",
) -> tuple["xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray"]:
    """Backpropagation through time for one layer.

    dh_out (H, T, B) is dL/dh_t from above (the next layer or the decoder); dh_last and
    dc_last (B, H) are dL/dh_T and dL/dc_T from beyond the chunk (zero in truncated BPTT).
    Returns dx (in, T, B), dh0 and dc0 (B, H), dW_ih, dW_hh and dbias (the gradient of both
    b_ih and b_hh, which enter the gates as one sum).
    """
    n_in, T, B = cache.x.shape
    H = dh_out.shape[0]
    i, f, g, o = split_gates(cache.gates)
    c_prev, tanh_c = cache.c[:-1], cache.tanh_c
    # The local derivatives of every step, computed for all T steps at once. From
    # c_t = f*c_{t-1} + i*g and h_t = o*tanh(c_t), with sigmoid' = s(1-s), tanh' = 1-tanh^2,
    # the gradient at each gate's pre-activation is dL/dc_t or dL/dh_t times:
    #   i: g * i(1-i)    f: c_{t-1} * f(1-f)    g: i * (1-g^2)    [times dL/dc_t]
    #   o: tanh(c_t) * o(1-o)                                      [times dL/dh_t]
    # and dL/dc_t receives dL/dh_t * o * (1 - tanh(c_t)^2).
    dgates = xp.empty((T, 4 * H, B), dtype=dh_out.dtype)
    di, df, dg, do = split_gates(dgates)
    for d, s, factor in ((di, i, g), (df, f, c_prev), (do, o, tanh_c)):
        xp.subtract(1.0, s, out=d)
        d *= s
        d *= factor
    xp.multiply(g, g, out=dg)
    xp.subtract(1.0, dg, out=dg)
    dg *= i
    dc_from_h = xp.multiply(tanh_c, tanh_c)
    xp.subtract(1.0, dc_from_h, out=dc_from_h)
    dc_from_h *= o
    # The recursion, from the last step to the first: dL/dh and dL/dc flow back in time.
    dh = xp.ascontiguousarray(dh_last.T)
    dc = xp.ascontiguousarray(dc_last.T)
    tmp = xp.empty((H, B), dtype=dh.dtype)
    w_hh_t = xp.ascontiguousarray(w_hh.T)  # (H, 4H): BLAS's fastest layout for W_hh.T @ dgates
    for t in reversed(range(T)):
        dh += dh_out[:, t]
        xp.multiply(dh, dc_from_h[t], out=tmp)
        dc += tmp
        ifg = dgates[t, : 3 * H].reshape(3, H, B)
        ifg *= dc
        dgates[t, 3 * H :] *= dh  # o
        dc *= f[t]  # dL/dc_{t-1}
        xp.matmul(w_hh_t, dgates[t], out=dh)  # dL/dh_{t-1}
    # the weight gradients sum over all T*B columns: the gates as one (4H, T*B) matrix
    flat = xp.ascontiguousarray(dgates.transpose(1, 0, 2)).reshape(4 * H, T * B)
    dw_ih = flat @ cache.x.reshape(n_in, T * B).T
    dw_hh = flat @ cache.h[:, :-1].reshape(H, T * B).T
    dbias = flat @ xp.ones(T * B, dtype=flat.dtype)  # the sum over columns, as one BLAS call
    dx = (w_ih.T @ flat).reshape(n_in, T, B)
    return dx, dh.T, dc.T, dw_ih, dw_hh, dbias
