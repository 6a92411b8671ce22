"""The jobs of the commands that read a model, from text to text: complete a prompt, score
lines, evaluate a file. They join the tokenizer, the model and prediction; the CLI only
parses flags and renders what these return. Training's job is `trainjob`."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from wordlstm import autocomplete, predict
from wordlstm.checkpoint import Loaded
from wordlstm.errors import BadInput
from wordlstm.text import read_training_lines, ready_batches
from wordlstm.tokenizer import Tokenizer


@dataclass
class TokenScore:
    token: str
    id: int
    log_prob: float


@dataclass
class LineScore:
    text: str
    tokens: int
    unknown: int
    log_prob: float
    token_scores: list[TokenScore]

    @property
    def ppl(self) -> float:
        return float(np.exp(-self.log_prob / self.tokens))


def score_lines(
    loaded: Loaded, lines: Iterable[str], continuous: bool = False, batch_size: int = 64
) -> Iterator[LineScore]:
    """Scores each line as it arrives: on its own from a zero state fed the end-of-line
    token, lines that arrive together side by side in one batch; or, when continuous, one
    after another with the state carried from line to line."""
    tok, model = loaded.tokenizer, loaded.model
    if continuous:
        state = None
        for text in lines:
            ids = tok.encode(text)
            reading = predict.read_lines(model, [ids], tok.eos_id, state)
            state = reading.state
            yield _line_score(tok, text, ids, reading.scores[0])
        return
    for batch in ready_batches(lines, batch_size):
        encoded = [tok.encode(text) for text in batch]
        reading = predict.read_lines(model, encoded, tok.eos_id)
        for text, ids, scores in zip(batch, encoded, reading.scores, strict=True):
            yield _line_score(tok, text, ids, scores)


def _line_score(tok: Tokenizer, text: str, ids: np.ndarray, log_probs: np.ndarray) -> LineScore:
    all_ids = [*ids.tolist(), tok.eos_id]
    return LineScore(
        text=text,
        tokens=len(all_ids),
        unknown=int(np.count_nonzero(ids == tok.unk_id)),
        log_prob=float(log_probs.sum(dtype=np.float64)),
        token_scores=[
            TokenScore(tok.id_to_token(i), i, float(lp))
            for i, lp in zip(all_ids, log_probs, strict=True)
        ],
    )


@dataclass
class Completion:
    """A prompt's next words (or, when it ends in an unfinished word, that word's
    completions) and its continuation; `fragment` is the unfinished word, `head` the prompt
    before it."""

    prompt: str
    next: list[tuple[str, float]]
    continuation: str
    fragment: str | None = None
    head: str = ""
    beams: list[tuple[str, float, bool]] = field(default_factory=list)

    @property
    def continued(self) -> str:
        """The prompt followed by its continuation, which finishes an unfinished word."""
        if self.fragment is not None:
            return self.head + self.continuation
        return f"{self.prompt} {self.continuation}".rstrip()


def complete(
    loaded: Loaded,
    prompts: list[str],
    *,
    top: int = 5,
    words: int = 0,
    sample: bool = False,
    seed: int | None = None,
    first: int = 0,
    temperature: float = 1.0,
    partial: bool | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    beam: int = 0,
) -> list[Completion]:
    """The most likely next words after each prompt and, with words > 0, a continuation of
    up to that many words: greedy, or sampled with a generator per prompt seeded by
    (seed, first + its index), so a prompt's sample does not depend on its batch. A prompt
    ending in an unfinished word (`autocomplete.split_fragment`'s `partial`) gets that
    word's completions instead of next words, and its continuation begins with one. With
    beam > 0 the continuation is the best of the `beam` most likely ones, all in `beams`
    as (text, log-probability, whether it reached the end of the line), best first.
    Sampling is cut to top_k / top_p."""
    tok, model = loaded.tokenizer, loaded.model
    splits = [autocomplete.split_fragment(tok, p, partial) for p in prompts]
    reading = predict.read_lines(model, [s.context for s in splits], tok.eos_id, distributions=True)
    for b, s in enumerate(splits):
        if s.fragment is not None:
            reading.next_log_probs[b] = autocomplete.fragment_log_probs(
                tok, reading.next_log_probs[b], s.fragment
            )
    rngs = None
    if sample:
        rngs = [
            np.random.default_rng(None if seed is None else [seed, first + i])
            for i in range(len(prompts))
        ]
    more = predict.continue_lines(
        model,
        reading.next_log_probs,
        reading.state,
        0 if beam else words,
        stop_id=tok.eos_id,
        exclude=(tok.unk_id,),
        rngs=rngs,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
    )
    completions = []
    rows = zip(prompts, splits, reading.next_log_probs, more, strict=True)
    for b, (prompt, s, log_probs, ids) in enumerate(rows):
        beams = _beams(loaded, log_probs, reading.state, b, beam, words)
        if beams:
            ids = beams[0].ids
        best = [(i, p) for i, p in predict.top_k(log_probs, top, exclude=(tok.unk_id,)) if p > 0]
        ids = [i for i in ids if i != tok.eos_id] if np.isfinite(log_probs).any() else []
        completions.append(
            Completion(
                prompt=prompt,
                next=[(tok.id_to_token(i), p) for i, p in best],
                continuation=tok.decode(ids) if ids else "",
                fragment=s.fragment,
                head=s.head,
                beams=[(tok.decode(x.ids), x.log_prob, x.ended) for x in beams],
            )
        )
    return completions


def _beams(loaded: Loaded, log_probs, state: tuple, b: int, width: int, words: int) -> list:
    """Beam search from row b of a batch's distributions and state (none for width 0)."""
    if not width or not words or not np.isfinite(log_probs).any():
        return []
    from wordlstm.beam import beam_search

    tok = loaded.tokenizer
    column = tuple(a[:, b : b + 1] for a in state)
    return beam_search(
        loaded.model, log_probs, column, width, words, stop_id=tok.eos_id, exclude=(tok.unk_id,)
    )


def evaluate_file(loaded: Loaded, path: str, *, batch_size: int = 10, bptt: int = 35) -> dict:
    """The benchmark protocol on one file: the whole text as one stream with the state
    carried across lines, read as `batch_size` parallel streams like the PyTorch example's
    validation. Returns perplexity, top-1/top-5 accuracy (also over word targets only,
    leaving out <unk> and <eos>), the token count and the unknown rate."""
    if batch_size < 1 or bptt < 1:
        raise BadInput("--batch-size and --bptt must be at least 1")
    tok = loaded.tokenizer
    ids = tok.encode_lines(read_training_lines([path]))
    result = predict.evaluate(
        loaded.model, ids, batch_size=batch_size, bptt=bptt, special=(tok.unk_id, tok.eos_id)
    )
    return {"file": path, "model": str(loaded.path), **result.summary()}
