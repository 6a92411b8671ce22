"""The jobs of the commands that read a model, from text to text: complete a prompt, score
lines, evaluate a file. They join the tokenizer, the model and prediction; the CLI only
parses flags and renders what these return. Training's job is `trainjob`."""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from wordlstm import autocomplete, predict
from wordlstm.checkpoint import Loaded
from wordlstm.data import TokenSpool
from wordlstm.errors import BadInput, SettingError
from wordlstm.text import STDIN, LineReader, LongLine, open_input, ready_batches
from wordlstm.tokenizer import BATCH_LINES, Prompt, Tokenizer

LEFT_OUT = "…[{} more bytes]"  # ends the text shown for a long line


@dataclass
class TokenScore:
    token: str
    id: int
    log_prob: float
    rank: int  # how many tokens the model found likelier (0: its first choice)


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
    loaded: Loaded,
    lines: Iterable[str | LongLine],
    continuous: bool = False,
    batch_size: int = 64,
    per_token: bool = False,
) -> Iterator[LineScore]:
    """Scores each line as it arrives: on its own from a zero state fed the end-of-line
    token, lines that arrive together side by side in one batch; or, when continuous, one
    after another with the state carried from line to line. A long line is read piece by
    piece with the state carried, which gives what reading it at once would. Each token's
    score (and rank) is kept only with `per_token`."""
    tok, model = loaded.tokenizer, loaded.model
    if continuous:
        state = None
        for line in lines:
            tally = _Tally(per_token)
            state = _read_parts(loaded, _parts(line), state, tally).state
            yield tally.score(shown_text(line))
        return
    for batch in ready_batches(lines, batch_size):
        for run in _runs(batch):
            if isinstance(run, LongLine):
                tally = _Tally(per_token)
                _read_parts(loaded, run.pieces(), None, tally)
                yield tally.score(shown_text(run))
                continue
            encoded = [tok.encode(text) for text in run]
            reading = predict.read_lines(model, encoded, tok.eos_id, ranks=per_token)
            ranks = reading.ranks or [None] * len(run)
            for text, ids, scores, rank in zip(run, encoded, reading.scores, ranks, strict=True):
                tally = _Tally(per_token)
                tally.add(tok, _with_eos(ids, tok.eos_id), scores, rank)
                yield tally.score(text)


def shown_text(line: str | LongLine) -> str:
    """A line as results show it: whole if it is kept whole, else its start and a mark that
    says how many bytes it leaves out (echoing it whole would mean holding all of it)."""
    if isinstance(line, str):
        return line
    if line.start_size == line.size:
        return line.start
    return line.start + LEFT_OUT.format(line.size - line.start_size)


class _Tally:
    """A line's figures, added up over the parts it is read in."""

    def __init__(self, per_token: bool) -> None:
        self.tokens = self.unknown = 0
        self.log_prob = 0.0
        self.per_token = per_token
        self.token_scores: list[TokenScore] = []

    def add(self, tok: Tokenizer, targets: np.ndarray, log_probs: np.ndarray, ranks=None) -> None:
        """Counts the scored targets (the end-of-line token among them at the line's end);
        ranks are given when per_token."""
        self.tokens += len(targets)
        self.unknown += int(np.count_nonzero(targets == tok.unk_id))
        self.log_prob += float(log_probs.sum(dtype=np.float64))
        if self.per_token:
            self.token_scores += [
                TokenScore(tok.id_to_token(i), i, float(lp), int(r))
                for i, lp, r in zip(targets.tolist(), log_probs, ranks, strict=True)
            ]

    def score(self, text: str) -> LineScore:
        return LineScore(text, self.tokens, self.unknown, self.log_prob, self.token_scores)


def _read_parts(
    loaded: Loaded,
    parts: Iterable[tuple[str, bool]],
    state: tuple | None,
    tally: _Tally,
    distributions: bool = False,
) -> predict.Reading:
    """Reads one line given as (text, ends the line) parts, cut between words, from `state`
    (zero if None) fed the end-of-line token, with the state carried from part to part;
    returns the reading of the last part (the state and distribution after the line)."""
    tok, model = loaded.tokenizer, loaded.model
    lead = None
    for text, ends in parts:
        ids = tok.encode(text)
        if ends:
            reading = predict.read_lines(
                model,
                [ids],
                tok.eos_id,
                state,
                lead=lead,
                distributions=distributions,
                ranks=tally.per_token,
            )
            tally.add(
                tok, _with_eos(ids, tok.eos_id), reading.scores[0], _line_ranks(reading.ranks)
            )
            return reading
        if len(ids):
            held = int(ids[-1])
            reading = predict.read_lines(
                model, [ids[:-1]], tok.eos_id, state, lead=lead, follow=held, ranks=tally.per_token
            )
            tally.add(tok, ids, reading.scores[0], _line_ranks(reading.ranks))
            state, lead = reading.state, held
    raise ValueError("the parts of a line must end with one that ends it")


def _line_ranks(ranks: list[np.ndarray] | None) -> np.ndarray | None:
    """The first line's ranks of a reading, if it has any."""
    return None if ranks is None else ranks[0]


def _parts(line: str | LongLine) -> Iterable[tuple[str, bool]]:
    return [(line, True)] if isinstance(line, str) else line.pieces()


def _with_eos(ids: np.ndarray, eos_id: int) -> np.ndarray:
    return np.append(ids, np.int32(eos_id))


def _runs(lines: list[str | LongLine]) -> Iterator[list[str] | LongLine]:
    """Lines in order as runs of whole lines (to read side by side) and long lines alone."""
    run: list[str] = []
    for line in lines:
        if isinstance(line, str):
            run.append(line)
            continue
        if run:
            yield run
            run = []
        yield line
    if run:
        yield run


@dataclass
class Completion:
    """A prompt's next words (or, when it ends in an unfinished word, that word's
    completions) and its continuation; `fragment` is the unfinished word, `head` the prompt
    before it."""

    prompt: str
    next: list[tuple[str, float]]
    continuation: str
    unknown: list[str] = field(default_factory=list)  # the prompt's words the model lacks
    recased: dict[str, str] = field(default_factory=dict)  # words read in another case
    fragment: str | None = None
    head: str = ""
    continued: str = ""  # the prompt followed by its continuation (which may finish its word)
    beams: list[tuple[str, float, bool, str]] = field(default_factory=list)  # (continuation,
    # log-probability, whether it reached the end of the line, the prompt so continued)


def complete(
    loaded: Loaded,
    prompts: list[str | LongLine],
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
    (seed, first + its index), so a prompt's sample does not depend on its batch. A word of
    a prompt unknown as written but known in another case is read as that one; neither
    <unk> nor <eos> is ever a next word (a continuation ends at <eos>). A prompt ending in
    an unfinished word (`autocomplete.split_fragment`'s `partial`) gets that word's
    completions instead of next words, and its continuation begins with one. With beam > 0
    the continuation is the best of the `beam` most likely ones, all in `beams` as (text,
    log-probability, whether it reached the end of the line), best first. Sampling is cut
    to top_k / top_p. A long prompt is read piece by piece, as `score_lines` reads a long
    line (its words as written, its last word finished)."""
    tok, model = loaded.tokenizer, loaded.model
    options = dict(
        top=top, words=words, sample=sample, seed=seed, temperature=temperature,
        top_k=top_k, top_p=top_p, beam=beam,
    )  # fmt: skip
    completions: list[Completion] = []
    for run in _runs(prompts):
        if isinstance(run, LongLine):
            reading = _read_parts(loaded, run.pieces(), None, _Tally(False), distributions=True)
            texts = [shown_text(run)]
            splits = [autocomplete.Split(np.zeros(0, np.int32), texts[0], None)]
            encoded = [Prompt(np.zeros(0, np.int32), [], {})]
        else:
            texts = run
            splits = [autocomplete.split_fragment(tok, p, partial) for p in run]
            encoded = [tok.encode_prompt(s.head) for s in splits]
            reading = predict.read_lines(
                model, [e.ids for e in encoded], tok.eos_id, distributions=True
            )
        completions += _continue(
            loaded, texts, splits, encoded, reading, first + len(completions), **options
        )
    return completions


def _continue(
    loaded: Loaded,
    prompts: list[str],
    splits: list[autocomplete.Split],
    encoded: list[Prompt],
    reading: predict.Reading,
    first: int,
    *,
    top: int,
    words: int,
    sample: bool,
    seed: int | None,
    temperature: float,
    top_k: int,
    top_p: float,
    beam: int,
) -> list[Completion]:
    """The completions of prompts from their reading, as `complete` describes them."""
    tok, model = loaded.tokenizer, loaded.model
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
    rows = zip(prompts, splits, encoded, reading.next_log_probs, more, strict=True)
    for b, (prompt, s, e, log_probs, ids) in enumerate(rows):
        beams = _beams(loaded, log_probs, reading.state, b, beam, words)
        if beams:
            ids = beams[0].ids
        special = (tok.unk_id, tok.eos_id)
        best = [(i, p) for i, p in predict.top_k(log_probs, top, exclude=special) if p > 0]
        ids = [i for i in ids if i != tok.eos_id] if np.isfinite(log_probs).any() else []
        completions.append(
            Completion(
                prompt=prompt,
                next=[(tok.id_to_token(i), p) for i, p in best],
                continuation=tok.decode(ids) if ids else "",
                unknown=e.unknown,
                recased=e.recased,
                fragment=s.fragment,
                head=s.head,
                continued=_continued(tok, prompt, s, ids),
                beams=[
                    (tok.decode(x.ids), x.log_prob, x.ended, _continued(tok, prompt, s, x.ids))
                    for x in beams
                ],
            )
        )
    return completions


def _continued(tok: Tokenizer, prompt: str, split: autocomplete.Split, ids) -> str:
    """The prompt continued by `ids` with the spacing the tokenizer's text has; the first
    of them finishes the prompt's unfinished word, if it has one."""
    ids = [i for i in ids if i != tok.eos_id]
    if split.fragment is not None:
        return split.head + tok.decode(ids)
    return prompt + tok.decode(ids, after=prompt) if ids else prompt


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


def evaluate_file(
    loaded: Loaded,
    path: str,
    *,
    batch_size: int = 10,
    bptt: int = 35,
    cache_size: int = 0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict:
    """The benchmark protocol on one file: the whole text as one stream with the state
    carried across lines, read as `batch_size` parallel streams like the PyTorch example's
    validation, with a word cache of `cache_size` steps unless 0. Returns perplexity (and
    the model's own, without the cache), top-1/top-5 accuracy (also over word targets only,
    leaving out <unk> and <eos>), the token count and the unknown rate. The file is read in
    bounded pieces and its tokens kept on disk, so memory does not grow with it. Reports
    progress as `on_progress(tokens done, tokens in all)`."""
    if batch_size < 1 or bptt < 1:
        raise SettingError("{batch_size} and {bptt} must be at least 1")
    tok = loaded.tokenizer
    with TokenSpool() as ids:
        _spool_tokens(tok, path, ids)
        result = predict.evaluate(
            loaded.model,
            ids,
            batch_size=batch_size,
            bptt=bptt,
            special=(tok.unk_id, tok.eos_id),
            cache_size=cache_size,
            on_progress=on_progress,
        )
    figures = result.summary()
    return {"file": path, "model": str(loaded.path), **figures, "cache_size": cache_size}


def _spool_tokens(tok: Tokenizer, path: str, spool: TokenSpool) -> None:
    """Appends the tokens of a text file's lines, each line's followed by the end-of-line
    token; BadInput naming the file if it is not UTF-8 text or has no words."""
    name = "stdin" if path == STDIN else path
    words = 0
    with open_input(path) as stream:
        try:
            for batch in ready_batches(LineReader([stream], strict=True), BATCH_LINES):
                for run in _runs(batch):
                    if isinstance(run, LongLine):
                        for text, ends in run.pieces():
                            ids = tok.encode(text)
                            spool.append(_with_eos(ids, tok.eos_id) if ends else ids)
                            words += len(ids)
                        continue
                    ids = tok.encode_lines(run)
                    spool.append(ids)
                    words += len(ids) - len(run)
        except BadInput as e:
            raise BadInput(f"{name}: {e}") from None
    if not words:
        raise BadInput(f"{name}: has no words to evaluate on")
