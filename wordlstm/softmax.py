"""The decoder and its softmax, fused: logits, loss, gradient and scores in blocks of rows.

For the decoder's input h (N, H), weight W (V, H) and bias b, the logits are z = h W^T + b and
log p(y) = z_y - log(sum_v exp(z_v)). The N x V logits never exist at once: they are made,
used and dropped a block of rows at a time. The decoder lives in one (H + 2, V) array, the
rows [W^T; b; 1] (`decoder_block`), so that three things are each one product:

    z           = [h, 1] @ [W^T; b]            the logits with their bias
    [eW, eb, s] = e @ [W^T; b; 1]^T            e = exp(z): e @ W for dL/dh, and the row sums
    [dW^T; db]  = [h, 1]^T @ dL/dz             the decoder's gradient
"""

from collections.abc import Iterator
from dataclasses import dataclass

from wordlstm.backend import xp

TINY_SUM, HUGE_SUM = 1e-30, 1e38  # softmax row sums safely inside float32's range


def decoder_block(W: "xp.ndarray", b: "xp.ndarray") -> "xp.ndarray":
    """The decoder's weight W (V, H) and bias b (V,) as one (H + 2, V) array, the rows
    [W^T; b; 1]; the caller replaces W and b by views of it (`block[:H].T`, `block[H]`).
    Rows rather than columns: W's view is then one stretch of memory (in column order),
    which NumPy's elementwise passes (the optimizer's) cover at full speed, while a view
    with gaps at each row's end is walked row by row."""
    H = W.shape[1]
    block = xp.empty((H + 2, W.shape[0]), dtype=W.dtype)
    block[:H], block[H], block[H + 1] = W.T, b, 1.0
    return block


@dataclass
class Block:
    """One block of rows of the softmax: rows first .. first + n of the decoder's input."""

    first: int
    targets: "xp.ndarray"  # (n,) the target ids
    h1: "xp.ndarray"  # (n, H + 1) [h, 1]
    e: "xp.ndarray"  # (n, V) exp(z - shift), z the logits, shift 0 or each row's max
    true: "xp.ndarray"  # (n,) z - shift at the targets: log p(target) = true - log(sums)
    sums: "xp.ndarray"  # (n,) the row sums of e
    e_w: "xp.ndarray | None"  # (n, H) e @ W, with `grad`
    rank: "xp.ndarray | None"  # (n,) how many logits beat the target's, with `ranks`


def blocks(
    decoder: "xp.ndarray",
    out: "xp.ndarray",
    targets: "xp.ndarray",
    cells: int,
    *,
    ranks: bool = False,
    grad: bool = False,
) -> Iterator[Block]:
    """The softmax of the decoder's input `out` (N, H) at `targets`, in blocks of at most
    `cells` logits. The blocks' arrays are reused: each is valid until the next."""
    H, V = decoder.shape[0] - 2, decoder.shape[1]
    N = out.shape[0]
    targets = targets.reshape(N)
    rows = min(N, max(1, cells // V))
    logits = xp.empty((rows, V), dtype=out.dtype)
    h1 = xp.ones((rows, H + 1), dtype=out.dtype)  # [h, 1], for the bias
    w_b = decoder[: H + 1]
    # the sums as a product too (one BLAS call, faster than a sum over rows)
    right = decoder.T if grad else decoder[H + 1]
    for s in range(0, N, rows):
        y = targets[s : s + rows]
        n = len(y)
        h1[:n, :H] = out[s : s + n]
        z = xp.matmul(h1[:n], w_b, out=logits[:n])
        true = z[xp.arange(n), y]
        rank = (z > true[:, None]).sum(axis=1) if ranks else None
        with xp.errstate(over="ignore", under="ignore", invalid="ignore"):
            xp.exp(z, out=z)
            prod = z @ right
        sums = prod[:, -1] if grad else prod
        # exp leaves float32's range past a logit of about +-88; the usual block never
        # comes near, so the shift by each row's max is only made where the sums show it
        if not (float(sums.min()) > TINY_SUM and float(sums.max()) < HUGE_SUM):
            z = xp.matmul(h1[:n], w_b, out=z)
            z -= z.max(axis=1)[:, None]
            true = z[xp.arange(n), y]
            xp.exp(z, out=z)
            prod = z @ right
            sums = prod[:, -1] if grad else prod
        e_w = prod[:, :H] if grad else None
        yield Block(s, y, h1[:n], z, true, sums, e_w, rank)


def cross_entropy(
    decoder: "xp.ndarray", out: "xp.ndarray", targets: "xp.ndarray", cells: int
) -> tuple[float, "xp.ndarray", "xp.ndarray"]:
    """The mean cross-entropy of the targets, fused with its gradient: (loss, dL/dout,
    [dW^T; db] as one (H + 1, V) array)."""
    N, H = out.shape
    W_t = decoder[:H]  # W^T, (H, V)
    dout = xp.empty_like(out)
    d_block = xp.empty((H + 1, decoder.shape[1]), dtype=out.dtype)
    total = 0.0
    for b in blocks(decoder, out, targets, cells, grad=True):
        s, y, n = b.first, b.targets, len(b.targets)
        total += float(xp.sum(xp.log(b.sums) - b.true))
        # dL/dz = (softmax - onehot) / N = r * (e - sums * onehot) with r = 1 / (N sums)
        # per row. So dL/dh = r * (e @ W) - W[y] / N, with e @ W from the block's product;
        # for [dW^T; db] = [h, 1]^T @ dL/dz the target entries of e change in place, and r
        # scales the small (n, H + 1) side of the product instead of the (n, V) block
        r = 1.0 / (b.sums * N)
        xp.multiply(b.e_w, r[:, None], out=dout[s : s + n])
        dout[s : s + n] -= W_t[:, y].T * (1.0 / N)
        b.e[xp.arange(n), y] -= b.sums
        h1_r = b.h1 * r[:, None]
        if s == 0:
            xp.matmul(h1_r.T, b.e, out=d_block)
        else:
            d_block += h1_r.T @ b.e
    return total / N, dout, d_block


def target_log_probs(
    decoder: "xp.ndarray", out: "xp.ndarray", targets: "xp.ndarray", cells: int, ranks: bool
) -> tuple["xp.ndarray", "xp.ndarray | None"]:
    """log p of each target (float64), and with `ranks` how many tokens are likelier."""
    N = out.shape[0]
    log_probs = xp.empty(N, dtype=xp.float64)
    rank = xp.empty(N, dtype=xp.int64) if ranks else None
    for b in blocks(decoder, out, targets, cells, ranks=ranks):
        log_probs[b.first : b.first + len(b.targets)] = b.true - xp.log(b.sums)
        if ranks:
            rank[b.first : b.first + len(b.targets)] = b.rank
    return log_probs, rank


def log_softmax(z: "xp.ndarray") -> "xp.ndarray":
    """log softmax of each row of the logits z, computed in place: z is returned."""
    z -= z.max(axis=1, keepdims=True)
    z -= xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    return z
