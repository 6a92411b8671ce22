"""The adaptive softmax (Grave, Joulin, Cissé, Grangier, Jégou 2017): a decoder for large
vocabularies that gives exact normalised probabilities at a fraction of the full softmax's cost.

Word ids are ranks by training frequency (the tokenizer's: <unk> and <eos>, then the words most
frequent first; a grown vocabulary's new words come last, so they join the last cluster), and
the cut-offs c_0 < c_1 < ... < c_{n-1} split the vocabulary by id alone, with no permutation:

    head        the words 0 .. c_0 - 1 and one token per tail cluster: c_0 + n outputs
    cluster i   the words c_i .. c_{i+1} - 1 (c_n = V), read through a projection P_i (d_i, H),
                d_i = H // div^(i+1), then their own output layer O_i (no bias)

    log p(w) = log softmax(h W^T + b)[w]                                    w in the head
    log p(w) = log softmax(h W^T + b)[c_0 + i] + log softmax(h P_i^T O_i^T)[w - c_i]

A token of the head costs the head's product; one of cluster i adds its cluster's, made small
by the projection. The arrays are those of PyTorch's nn.AdaptiveLogSoftmaxWithLoss(head_bias=
True) under the prefix `adaptive.`: head.weight (W), head.bias (b), tail.{i}.0.weight (P_i)
and tail.{i}.1.weight (O_i); as there (and in fairseq's), the clusters have no bias.

With tied weights the head's word rows are the embedding's rows of the same words (as the full
softmax ties its decoder, Press & Wolf 2017); the cluster tokens' rows are the softmax's own,
trained as CLUSTER_ROWS, and the saved head.weight holds both, whole. A cluster whose projection
is as wide as the hidden layer (div 1) ties its output layer O_i too: its rows are the
embedding's rows of its words (fairseq's tie_adaptive_weights), saved whole as O_i; a narrower
cluster's O_i is its own.
"""

import math
from dataclasses import dataclass

from wordlstm import softmax
from wordlstm.backend import xp
from wordlstm.errors import SettingError
from wordlstm.optim import RowGradient, added

HEAD_WEIGHT, HEAD_BIAS = "adaptive.head.weight", "adaptive.head.bias"
CLUSTER_ROWS = "adaptive.head.clusters"  # tied: the head's rows of the cluster tokens
FIRST_CUTOFF, CUTOFF_STEP = 2000, 5  # default_cutoffs
SOFTMAXES = ("full", "adaptive")  # a model's choices of softmax


def default_cutoffs(vocab: int) -> tuple[int, ...]:
    """The cut-offs 2,000, 10,000, 50,000, ... (each 5 times the last) that are at most half
    the vocabulary: a head of the 2,000 most frequent words, then clusters of words 5 times
    as many and rarer. At V = 100,000 these are Grave et al.'s; a vocabulary of under 4,000
    words gets none (one head of every word: the full softmax)."""
    cutoffs, c = [], FIRST_CUTOFF
    while c <= vocab // 2:
        cutoffs.append(c)
        c *= CUTOFF_STEP
    return tuple(cutoffs)


def tail_names(i: int) -> tuple[str, str]:
    """Cluster i's projection P_i and output weight O_i."""
    return f"adaptive.tail.{i}.0.weight", f"adaptive.tail.{i}.1.weight"


def projection_widths(hidden: int, div_value: float, clusters: int) -> tuple[int, ...]:
    """Each cluster's projection width d_i = H // div^(i+1), as PyTorch rounds it."""
    return tuple(int(hidden // div_value ** (i + 1)) for i in range(clusters))


def check_choice(softmax: str, has_cutoffs: bool) -> None:
    """SettingError unless `softmax` is one of SOFTMAXES, with cut-offs only if adaptive."""
    if softmax not in SOFTMAXES:
        raise SettingError(f"{{softmax}} must be one of {', '.join(SOFTMAXES)}")
    if has_cutoffs and softmax != "adaptive":
        raise SettingError("{cutoffs} go with {softmax} adaptive")


def check_split(cutoffs: tuple[int, ...], div_value: float, hidden: int) -> None:
    """SettingError unless the cut-offs increase from 1 and every cluster's projection keeps
    a unit: the checks that need no vocabulary."""
    if not 1 <= div_value < math.inf:
        raise SettingError("{div_value} must be a number of at least 1")
    if any(a >= b for a, b in zip(cutoffs, cutoffs[1:], strict=False)) or (
        cutoffs and cutoffs[0] < 1
    ):
        raise SettingError(f"{{cutoffs}} must increase from 1 (got {', '.join(map(str, cutoffs))})")
    if any(d < 1 for d in projection_widths(hidden, div_value, len(cutoffs))):
        raise SettingError(
            f"{{hidden}} {hidden} divided {len(cutoffs)} times by {{div_value}} {div_value:g} "
            "leaves the last cluster's projection no unit: give fewer {cutoffs} or a smaller "
            "{div_value}"
        )


@dataclass(frozen=True)
class Clusters:
    """How the adaptive softmax splits a vocabulary of `vocab` words after `hidden` units."""

    vocab: int
    hidden: int
    cutoffs: tuple[int, ...]
    div_value: float

    def __post_init__(self) -> None:
        check_split(self.cutoffs, self.div_value, self.hidden)
        if self.cutoffs and self.cutoffs[-1] >= self.vocab:
            raise SettingError(
                f"{{cutoffs}} must be below the vocabulary's size {self.vocab} "
                f"(got {self.cutoffs[-1]})"
            )

    @property
    def shortlist(self) -> int:
        """The words of the head: ids 0 .. shortlist - 1."""
        return self.cutoffs[0] if self.cutoffs else self.vocab

    @property
    def edges(self) -> tuple[int, ...]:
        """Cluster i holds the ids edges[i] .. edges[i + 1] - 1."""
        return (*self.cutoffs, self.vocab)

    @property
    def dims(self) -> tuple[int, ...]:
        """Each cluster's projection width (`projection_widths`)."""
        return projection_widths(self.hidden, self.div_value, len(self.cutoffs))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The saved arrays of the softmax and their shapes."""
        H, n = self.hidden, len(self.cutoffs)
        shapes = {HEAD_WEIGHT: (self.shortlist + n, H), HEAD_BIAS: (self.shortlist + n,)}
        for i, d in enumerate(self.dims):
            proj, weight = tail_names(i)
            shapes.update({proj: (d, H), weight: (self.edges[i + 1] - self.edges[i], d)})
        return shapes

    def tied_tails(self, tied: bool) -> tuple[int, ...]:
        """The clusters whose output rows are the embedding's rows of their words: with tied
        weights, those whose projection is as wide as the hidden layer (and the embedding)."""
        return tuple(i for i, d in enumerate(self.dims) if tied and d == self.hidden)

    def last_output(self) -> tuple[str, ...]:
        """The output weight (and bias) whose rows are the last words: where new words go."""
        return tail_names(len(self.cutoffs) - 1)[1:] if self.cutoffs else (HEAD_WEIGHT, HEAD_BIAS)


class AdaptiveSoftmax:
    """The adaptive softmax over a model's parameters: the head and each cluster's output
    layer live in blocks [W^T; b; 1] for `softmax`'s fused passes, the parameters become
    views of them (as `LanguageModel` does with the full softmax's decoder)."""

    def __init__(self, clusters: Clusters, params: dict, tied: bool) -> None:
        c, H = clusters, clusters.hidden
        self.clusters, self.params, self.tied = c, params, tied
        if tied:  # the word rows are the embedding's, copied in before each use (`_head`)
            words = params["encoder.weight"][: c.shortlist]
            head_weight = xp.concatenate([words, params[CLUSTER_ROWS]])
        else:
            head_weight = params[HEAD_WEIGHT]
        self.head = softmax.decoder_block(head_weight, params[HEAD_BIAS])
        if tied:
            params[CLUSTER_ROWS] = self.head[:H, c.shortlist :].T
        else:
            params[HEAD_WEIGHT] = self.head[:H].T
        params[HEAD_BIAS] = self.head[H]
        self.tails, self.tied_tails = [], c.tied_tails(tied)
        for i, d in enumerate(c.dims):
            weight = tail_names(i)[1]
            if i in self.tied_tails:  # the embedding's rows, copied in before each use (`_tail`)
                output = params["encoder.weight"][c.edges[i] : c.edges[i + 1]]
            else:
                output = params[weight]
            bias = xp.zeros(output.shape[0], dtype=output.dtype)  # stays 0
            block = softmax.decoder_block(output, bias)
            if i not in self.tied_tails:
                params[weight] = block[:d].T
            self.tails.append(block)

    def _head(self) -> "xp.ndarray":
        """The head's block, its word rows first made the embedding's when tied."""
        if self.tied:
            H, C = self.clusters.hidden, self.clusters.shortlist
            self.head[:H, :C] = self.params["encoder.weight"][:C].T
        return self.head

    def _tail(self, i: int) -> "xp.ndarray":
        """Cluster i's block, its rows first made the embedding's when it is tied."""
        block = self.tails[i]
        if i in self.tied_tails:
            words = slice(self.clusters.edges[i], self.clusters.edges[i + 1])
            block[: self.clusters.hidden] = self.params["encoder.weight"][words].T
        return block

    def _split(self, targets: "xp.ndarray") -> tuple["xp.ndarray", "xp.ndarray"]:
        """Each target's cluster (-1: a word of the head) and its output in the head: its own
        id, or its cluster's token."""
        c = self.clusters
        cluster = xp.searchsorted(xp.asarray(c.cutoffs, dtype=targets.dtype), targets, "right") - 1
        return cluster, xp.where(cluster < 0, targets, c.shortlist + cluster)

    def weights(self) -> dict:
        """The arrays to save that are not parameters as they are: the head's weight whole,
        and the tied clusters' output weights."""
        H = self.clusters.hidden
        out = {HEAD_WEIGHT: self._head()[:H].T}
        for i in self.tied_tails:
            out[tail_names(i)[1]] = self._tail(i)[:H].T
        return out

    def cross_entropy(self, out: "xp.ndarray", targets: "xp.ndarray", cells: int) -> tuple:
        """The mean cross-entropy of the targets after the decoder's input `out` (N, H), fused
        with its gradient: (loss, dL/dout, the gradients by parameter name; tied, those of
        the embedding's head rows under "encoder.weight")."""
        c, (N, H) = self.clusters, out.shape
        targets = targets.reshape(N)
        cluster, head_targets = self._split(targets)
        # the head: -log p_head(the target's word or cluster token), its mean over all N rows
        loss, dout, d_head = softmax.cross_entropy(self._head(), out, head_targets, cells)
        grads = {HEAD_BIAS: d_head[H]}
        if self.tied:  # through the head's word rows, the embedding's
            words = xp.ascontiguousarray(d_head[:H, : c.shortlist].T)
            grads["encoder.weight"] = RowGradient(xp.arange(c.shortlist), words, (c.vocab, H))
            grads[CLUSTER_ROWS] = d_head[:H, c.shortlist :].T
        else:
            grads[HEAD_WEIGHT] = d_head[:H].T
        for i, d in enumerate(c.dims):
            proj, weight = tail_names(i)
            P, rows = self.params[proj], xp.flatnonzero(cluster == i)
            if len(rows) == 0:  # no target in the cluster: its arrays have no gradient
                grads[proj] = xp.zeros_like(P)
                if i not in self.tied_tails:
                    grads[weight] = xp.zeros_like(self.params[weight])
                continue
            h = out[rows]
            u = h @ P.T  # the projection into the cluster
            # -log p_cluster(word), a mean over the cluster's rows: `share` makes it one over N
            local = targets[rows] - c.edges[i]
            loss_i, du, d_tail = softmax.cross_entropy(self._tail(i), u, local, cells)
            share = len(rows) / N
            loss += share * loss_i
            du *= share  # through the share
            d_tail *= share
            if i in self.tied_tails:  # through the cluster's output rows, the embedding's
                words = xp.arange(c.edges[i], c.edges[i + 1])
                tail = RowGradient(words, xp.ascontiguousarray(d_tail[:d].T), (c.vocab, H))
                grads["encoder.weight"] = added(grads["encoder.weight"], tail)
            else:
                grads[weight] = d_tail[:d].T  # (its last row, the bias's, unused)
            grads[proj] = du.T @ h  # through u = h P^T, to P
            dout[rows] += du @ P  # through u = h P^T, to h
        return loss, dout, grads

    def target_log_probs(
        self, out: "xp.ndarray", targets: "xp.ndarray", cells: int, ranks: bool
    ) -> tuple["xp.ndarray", "xp.ndarray | None"]:
        """log p of each target (float64), and with `ranks` how many words are likelier:
        that needs every word's probability, so the rows are then made whole (`log_probs`)."""
        N = out.shape[0]
        targets = targets.reshape(N)
        if ranks:
            return self._ranked(out, targets, cells)
        cluster, head_targets = self._split(targets)
        log_probs, _ = softmax.target_log_probs(self._head(), out, head_targets, cells, False)
        for i in range(len(self.clusters.cutoffs)):
            rows = xp.flatnonzero(cluster == i)
            if len(rows):
                u = out[rows] @ self.params[tail_names(i)[0]].T
                local = targets[rows] - self.clusters.edges[i]
                in_cluster, _ = softmax.target_log_probs(self._tail(i), u, local, cells, False)
                log_probs[rows] += in_cluster
        return log_probs, None

    def _ranked(self, out, targets, cells: int) -> tuple["xp.ndarray", "xp.ndarray"]:
        """log p of each target and how many words are likelier, from whole rows of log p
        made a block of rows at a time."""
        N, V = out.shape[0], self.clusters.vocab
        log_probs, rank = xp.empty(N, dtype=xp.float64), xp.empty(N, dtype=xp.int64)
        step = max(1, cells // V)
        for s in range(0, N, step):
            rows = self.log_probs(out[s : s + step])
            true = rows[xp.arange(len(rows)), targets[s : s + step]]
            log_probs[s : s + len(rows)] = true
            rank[s : s + len(rows)] = (rows > true[:, None]).sum(axis=1)
        return log_probs, rank

    def log_probs(self, out: "xp.ndarray") -> "xp.ndarray":
        """log p of every word after each row of the decoder's input: (N, V)."""
        c, H = self.clusters, self.clusters.hidden
        head = self._head()
        log_head = softmax.log_softmax(out @ head[:H] + head[H])  # words and cluster tokens
        log_probs = xp.empty((out.shape[0], c.vocab), dtype=out.dtype)
        log_probs[:, : c.shortlist] = log_head[:, : c.shortlist]
        for i, d in enumerate(c.dims):
            tail, u = self._tail(i), out @ self.params[tail_names(i)[0]].T
            in_cluster = softmax.log_softmax(u @ tail[:d])  # (the bias row is 0)
            log_probs[:, c.edges[i] : c.edges[i + 1]] = (
                log_head[:, c.shortlist + i, None] + in_cluster
            )
        return log_probs
