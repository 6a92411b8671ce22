"""The settings of training and of completion, each checked where it is made: an error
names the fields it is about (`SettingError`), which the command line words as flags."""

import math
from dataclasses import dataclass

from wordlstm import adaptive
from wordlstm.errors import SettingError

DEFAULT_LR = {"sgd": 20.0, "adam": 0.002}
SOFTMAX_CHOICES = ("auto", *adaptive.SOFTMAXES)  # auto: by the vocabulary (softmax_for)
# From this many words "auto" takes the adaptive softmax: there the full softmax's decoder is
# nearly all of a step's work (benchmarks/adaptive_vocab.md: the speed-up by vocabulary size).
ADAPTIVE_FROM = 50_000
SCHEDULES = ("plateau", "budget")  # see Recipe.schedule


@dataclass
class Recipe:
    """How to train: the PyTorch word-language-model example's recipe, plus averaging."""

    epochs: int = 40
    max_time: float | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    clip: float = 0.25
    bptt: int = 35
    batch_size: int = 20
    eval_batch_size: int = 64  # validation only steers the schedule: read as 64 fast streams
    valid_tokens: int = 50_000  # and of its first 50,000 tokens: as good a guide to which
    # epoch is better as the whole of a large file, at a fraction of the time
    average: bool = True  # from the first epoch that does not improve, or once
    # training.AVERAGE_FROM of the epochs or of max_time is spent, validate and save the
    # running average of the weights since then (every training.AVERAGE_EVERY-th step's;
    # ASGD-style), not the last ones; that first plateau then does not divide the rate
    schedule: str = "plateau"  # "plateau": with SGD, an epoch that does not improve divides
    # the learning rate (as above); "budget": plateaus change nothing, the rate stays, and
    # averaging begins once training.AVERAGE_FROM of the budget is spent, so all of it trains
    lr_floor: float = 0.0  # the plateau schedule divides the rate no lower than this and
    # trains on at it; divergence retries still divide (the same step would diverge again)

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise SettingError(f"{{optimizer}} must be one of {', '.join(DEFAULT_LR)}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.epochs < 1 or self.bptt < 1 or self.batch_size < 1:
            raise SettingError("{epochs}, {bptt} and {batch_size} must be at least 1")
        if not (0 < self.lr < math.inf and 0 <= self.clip < math.inf):
            raise SettingError("{lr} must be positive and {clip} not negative (both finite)")
        if self.max_time is not None and not self.max_time > 0:  # NaN too
            raise SettingError("{max_time} must be a positive number of seconds")
        if self.schedule not in SCHEDULES:
            raise SettingError(f"{{schedule}} must be one of {', '.join(SCHEDULES)}")
        if not 0 <= self.lr_floor < math.inf:
            raise SettingError("{lr_floor} must be a finite number, not negative")


@dataclass
class TokenizerSettings:
    split: str = "words"
    lowercase: bool = False
    vocab_size: int = 0
    min_freq: int = 1


@dataclass
class ModelSettings:
    embed: int = 200
    hidden: int = 200
    layers: int = 2
    dropout: float | None = None  # None: by tokens per vocabulary word (default_dropout)
    tied: bool = True
    forget_bias: float = 1.0  # cells start out remembering: see README, "train"
    dropout_input: float | None = None  # None: the dropout's
    dropout_hidden: float | None = None  # None: the dropout's
    locked: bool = False
    embed_dropout: float = 0.0
    weight_drop: float = 0.0
    ar: float = 0.0
    tar: float = 0.0
    softmax: str = "auto"  # "full", "adaptive" (wordlstm.adaptive), or by the vocabulary
    cutoffs: list[int] | None = None  # adaptive: where the head and each cluster end;
    # None: adaptive.default_cutoffs of the vocabulary
    div_value: float = 4.0  # adaptive: each cluster's projection is this much narrower

    def __post_init__(self) -> None:
        if self.cutoffs is not None:
            self.cutoffs = list(self.cutoffs)  # one type, the one config.json gives back
        if self.softmax not in SOFTMAX_CHOICES:
            raise SettingError(f"{{softmax}} must be one of {', '.join(SOFTMAX_CHOICES)}")
        if self.cutoffs is not None and self.softmax != "adaptive":
            raise SettingError("{cutoffs} go with {softmax} adaptive")
        if self.softmax == "adaptive":
            adaptive.check_split(tuple(self.cutoffs or ()), self.div_value, self.hidden)

    def softmax_for(self, vocab: int) -> str:
        """The softmax of a model of `vocab` words: the one chosen, or for "auto" the adaptive
        from ADAPTIVE_FROM words on where its default split suits the hidden size."""
        if self.softmax != "auto":
            return self.softmax
        splits = len(adaptive.default_cutoffs(vocab))
        fits = min(adaptive.projection_widths(self.hidden, self.div_value, splits), default=1)
        return "adaptive" if vocab >= ADAPTIVE_FROM and fits >= 1 else "full"

    def split(self, vocab: int) -> tuple[int, ...]:
        """The cut-offs of the adaptive softmax over `vocab` words (none for the full)."""
        if self.softmax_for(vocab) != "adaptive":
            return ()
        return adaptive.default_cutoffs(vocab) if self.cutoffs is None else tuple(self.cutoffs)


@dataclass
class CompleteOptions:
    """What `Model.complete` does with each prompt; the checks of the settings' values and
    combinations are here, each error naming its fields."""

    top: int = 5  # next words to give
    words: int = 0  # continue the prompt by this many words
    sample: bool = False  # sample the continuation (else greedy)
    temperature: float = 1.0
    seed: int | None = None  # with sample: a repeatable continuation
    partial: bool | None = None  # the last word is unfinished (None: guess)
    beam: int = 0  # with words: this many most likely continuations
    top_k: int = 0  # with sample: only the k likeliest words (0: all)
    top_p: float = 1.0  # with sample: only the likeliest words making up this probability

    def __post_init__(self) -> None:
        if self.top < 0 or self.words < 0:
            raise SettingError("{top} and {words} must not be negative")
        if not self.temperature > 0:
            raise SettingError("{temperature} must be positive")
        if self.beam < 0 or self.top_k < 0:
            raise SettingError("{beam} and {top_k} must not be negative")
        if self.beam and not self.words:
            raise SettingError("{beam} needs {words}, the length of the continuations")
        if self.beam and self.sample:
            raise SettingError("{beam} and {sample} exclude each other")
        if not 0 < self.top_p <= 1:
            raise SettingError("{top_p} must be in (0, 1]")
        if (self.top_k or self.top_p < 1) and not self.sample:
            raise SettingError("{top_k} and {top_p} cut {sample}'s choices: add {sample}")


CACHE_SIZE = 300  # the word cache's steps kept per stream when reading a text (wordcache.py)


def check_cache_size(size: int) -> int:
    """The word cache's size if usable: a whole number, 0 for no cache."""
    if type(size) is not int or size < 0:
        raise SettingError("{cache_size} must be a whole number, at least 0")
    return size
