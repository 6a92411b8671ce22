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
the time loop; only h_{t-1} @ W_hh.T is left inside it.

The backward pass is backpropagation through time: it walks the steps in reverse, carrying
dL/dh and dL/dc from step t+1 to step t, and keeps each step's gate gradients so that the
weight gradients are each one product after the loop. What does not depend on the
recursion (the gates' local derivatives) is computed for all steps at once before it.
"""

from dataclasses import dataclass

from wordlstm.backend import xp


def split_gates(a: "xp.ndarray") -> tuple:
    """Views of the i, f, g, o blocks of a (..., 4H) gate array."""
    H = a.shape[-1] // 4
    return a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]


@dataclass
class LayerCache:
    """What the backward pass needs from the forward pass of one layer."""

    x: "xp.ndarray"  # (T, B, in) the layer's input
    gates: "xp.ndarray"  # (T, B, 4H) i, f, g, o after their nonlinearities
    h: "xp.ndarray"  # (T+1, B, H) h[0] is the initial state, h[t+1] the output of step t
    c: "xp.ndarray"  # (T+1, B, H) likewise for the cell state
    tanh_c: "xp.ndarray"  # (T, B, H) tanh(c_t)


def forward(
    x: "xp.ndarray",
    h0: "xp.ndarray",
    c0: "xp.ndarray",
    w_ih: "xp.ndarray",
    w_hh: "xp.ndarray",
    bias: "xp.ndarray",
) -> tuple["xp.ndarray", LayerCache]:
    """Runs the layer over x (T, B, in) from state (h0, c0); returns h_1..h_T (T, B, H)."""
    T, B, n_in = x.shape
    H = h0.shape[-1]
    # sigmoid(z) = (1 + tanh(z/2)) / 2: with the rows of i, f and o halved in the weights
    # and bias, one tanh over all four gates serves them all (one call instead of nine on
    # column slices, which dominate a small layer's time loop)
    scale = xp.full((4 * H, 1), 0.5, dtype=x.dtype)
    scale[2 * H : 3 * H] = 1.0
    gates = (x.reshape(T * B, n_in) @ (w_ih * scale).T).reshape(T, B, 4 * H)
    gates += bias * scale[:, 0]
    h = xp.empty((T + 1, B, H), dtype=x.dtype)
    c = xp.empty((T + 1, B, H), dtype=x.dtype)
    tanh_c = xp.empty((T, B, H), dtype=x.dtype)
    recurrent = xp.empty((B, 4 * H), dtype=x.dtype)
    ig = xp.empty((B, H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    w_hh_t = xp.ascontiguousarray((w_hh * scale).T)  # (H, 4H): BLAS's fastest layout
    for t in range(T):
        a = gates[t]
        xp.matmul(h[t], w_hh_t, out=recurrent)
        a += recurrent
        xp.tanh(a, out=a)
        a *= 0.5
        a += 0.5  # i, f, o are now their sigmoids; g is (1 + g) / 2 ...
        i, f, g, o = split_gates(a)
        g *= 2.0
        g -= 1.0  # ... and back to tanh
        xp.multiply(f, c[t], out=c[t + 1])
        xp.multiply(i, g, out=ig)
        c[t + 1] += ig
        xp.tanh(c[t + 1], out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=h[t + 1])
    return h[1:], LayerCache(x, gates, h, c, tanh_c)


def backward(
    dh_out: "xp.ndarray",
    dh_last: "xp.ndarray",
    dc_last: "xp.ndarray",
    cache: LayerCache,
    w_ih: "xp.ndarray",
    w_hh: "xp.ndarray",
) -> tuple["xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray", "xp.ndarray"]:
    """Backpropagation through time for one layer.

    dh_out (T, B, H) is dL/dh_t from above (the next layer or the decoder); dh_last and
    dc_last are dL/dh_T and dL/dc_T from beyond the chunk (zero in truncated BPTT).
    Returns dx (T, B, in), dh0, dc0, dW_ih, dW_hh and dbias (the gradient of both
    b_ih and b_hh, which enter the gates as one sum).
    """
    T, B, n_in = cache.x.shape
    H = dh_out.shape[-1]
    i, f, g, o = split_gates(cache.gates)
    c_prev, tanh_c = cache.c[:-1], cache.tanh_c
    # The local derivatives of every step, computed for all T steps at once. From
    # c_t = f*c_{t-1} + i*g and h_t = o*tanh(c_t), with sigmoid' = s(1-s), tanh' = 1-tanh^2,
    # the gradient at each gate's pre-activation is dL/dc_t or dL/dh_t times:
    #   i: g * i(1-i)    f: c_{t-1} * f(1-f)    g: i * (1-g^2)    [times dL/dc_t]
    #   o: tanh(c_t) * o(1-o)                                      [times dL/dh_t]
    # and dL/dc_t receives dL/dh_t * o * (1 - tanh(c_t)^2).
    dgates = xp.empty((T, B, 4, H), dtype=dh_out.dtype)
    di, df, dg, do = (dgates[:, :, k] for k in range(4))
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
    dh = dh_last.copy()
    dc = dc_last.copy()
    tmp = xp.empty((B, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        dh += dh_out[t]
        xp.multiply(dh, dc_from_h[t], out=tmp)
        dc += tmp
        dgates[t, :, :3] *= dc[:, None, :]  # i, f, g
        dgates[t, :, 3] *= dh  # o
        dc *= f[t]  # dL/dc_{t-1}
        xp.matmul(dgates[t].reshape(B, 4 * H), w_hh, out=dh)  # dL/dh_{t-1}
    flat = dgates.reshape(T * B, 4 * H)
    dw_ih = flat.T @ cache.x.reshape(T * B, n_in)
    dw_hh = flat.T @ cache.h[:-1].reshape(T * B, H)
    dbias = xp.ones(T * B, dtype=flat.dtype) @ flat  # the sum over rows, as one BLAS call
    dx = (flat @ w_ih).reshape(T, B, n_in)
    return dx, dh, dc, dw_ih, dw_hh, dbias
