"""Training a model further on new text (`train --continue`): the run starts from the
model's weights and keeps its architecture and vocabulary, or grows the vocabulary by the
new text's words (their rows made as a fresh model's, after the old ids). Settings not given
are the model's, the learning rate where its schedule ended. The old validation text is
read again to measure forgetting: its perplexity before the run and after.

`start` builds the run from the model folder; `trainjob.train_files` then runs the same
loop and Saver as any training, keeping the old model in the folder until an epoch of the
new run is validated (`saver.Kept`).
"""

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from wordlstm import store, tokencache
from wordlstm.backend import to_host
from wordlstm.checkpoint import Loaded, load_model
from wordlstm.data import hold_out
from wordlstm.errors import BadInput, SettingError, literal
from wordlstm.model import Architecture, LanguageModel
from wordlstm.predict import evaluate
from wordlstm.resume import Saved
from wordlstm.saver import Kept
from wordlstm.settings import ModelSettings, Recipe, TokenizerSettings
from wordlstm.text import STDIN
from wordlstm.tokenizer import Tokenizer
from wordlstm.trainjob import VALID_FRACTION, TrainJob

_SHAPE = ("embed", "hidden", "layers", "tied", "split", "lowercase", "forget_bias", "softmax")
_SHAPE += ("cutoffs", "div_value")
_VOCABULARY = ("vocab_size", "min_freq")  # only for growing the vocabulary


@dataclass
class Base:
    """What a continued run takes from the model it continues. Its resume state keeps a
    copy, since once an epoch is validated the folder holds the new model."""

    vocab: int  # the old vocabulary's size: the ids from here on are new words
    recipe: dict  # config.json's recipe, with the model's dropout and `lr_end`, the
    # learning rate of its last epoch
    data: dict  # where its training and validation text came from
    metrics: dict
    old_valid_ppl_before: float | None = None  # the old validation text's perplexity

    @classmethod
    def from_dict(cls, doc: object, where: Path) -> "Base":
        """The Base that `asdict` wrote into the resume state; BadInput if it is damaged."""
        kinds = {"vocab": int, "recipe": dict, "data": dict, "metrics": dict}
        ok = isinstance(doc, dict) and all(isinstance(doc.get(k), t) for k, t in kinds.items())
        before = doc.get("old_valid_ppl_before") if ok else None
        if not ok or not (before is None or isinstance(before, (int, float))):
            raise BadInput(f"{where / store.STATE_JSON} is damaged (the continued model)")
        return cls(**{f.name: doc.get(f.name) for f in fields(cls)})


@dataclass
class Start:
    """The model folder a continued run starts from, and the old validation text."""

    base: Base
    loaded: Loaded  # the folder's model as it is
    grow: TokenizerSettings | None  # the bounds to grow the vocabulary within; None: keep it
    dropout: float
    old_valid_ids: np.ndarray | None  # read with the old vocabulary
    old_valid: str  # what the old validation text is, or why it cannot be read

    def vocabulary(self, lines: Iterable[str]) -> Tokenizer:
        """The folder's vocabulary, grown by the words of `lines` if asked."""
        tokenizer = self.loaded.tokenizer
        if self.grow is None:
            return tokenizer
        return tokenizer.grow(lines, vocab_size=self.grow.vocab_size, min_freq=self.grow.min_freq)

    def model(self, vocab: int, rng: np.random.Generator) -> LanguageModel:
        """A fresh copy of the folder's model with rows for new words up to `vocab`."""
        model = LanguageModel.from_weights(self.loaded.model.arch, self._weights(), self.dropout)
        return model.with_vocab(vocab, rng) if vocab > model.arch.vocab else model

    def kept(self) -> Kept:
        """The folder's model, to keep there until the run has validated an epoch."""
        return Kept(self.loaded.config, self.loaded.tokenizer.to_str(), self._weights())

    def _weights(self) -> dict[str, np.ndarray]:
        """A copy of the folder's weights (training changes the model's in place)."""
        return {n: np.array(to_host(a)) for n, a in self.loaded.model.weights().items()}

    def old_valid_ppl(self, arch: Architecture, weights: dict, recipe: Recipe) -> float | None:
        """The perplexity of a model with these weights on the old validation text."""
        if self.old_valid_ids is None:
            return None
        model = LanguageModel.from_weights(arch, weights)
        return _validation_ppl(model, self.old_valid_ids, recipe)


def start(job: TrainJob, path: Path, saved: Saved | None) -> tuple[TrainJob, Start]:
    """The job with the architecture and (where not given) the recipe of the model in folder
    `path`, and the run's start; `saved` is the state when resuming a continued run.
    BadInput if there is no model to continue or the job disagrees with it."""
    try:
        loaded = load_model(str(path))
    except BadInput as e:
        raise BadInput(f"nothing to continue: {e}") from None
    if saved is not None:
        if "continued" not in saved.fingerprint:
            raise SettingError(
                f"cannot resume {literal(path)}: its saved run is not a {{continued}} run"
            )
        base = Base.from_dict(saved.fingerprint["continued"], path)
    elif loaded.config.get("unfinished"):
        raise SettingError(
            f"nothing to continue: {literal(path)} was interrupted before its first epoch "
            "ended ({resume} finishes that run)"
        )
    else:
        base = _base(loaded, path)
    job = _resolved(job, loaded, base, path)
    ids, what = _old_validation(base, loaded.tokenizer, job.recipe.valid_tokens)
    if saved is None and ids is not None:
        base.old_valid_ppl_before = _validation_ppl(loaded.model, ids, job.recipe)
    grow = job.tokenizer if job.grow_vocab else None
    return job, Start(base, loaded, grow, job.net.dropout, ids, what)


def _base(loaded: Loaded, path: Path) -> Base:
    """The Base of a model folder's config; BadInput if config.json lacks what it needs."""
    config = loaded.config
    try:
        recipe = {**config["recipe"], "dropout": config["dropout"]}
        history = config.get("history") or [{"lr": recipe["lr"]}]
        recipe["lr_end"] = history[-1]["lr"]
        return Base(loaded.model.arch.vocab, recipe, dict(config["data"]), config["metrics"])
    except (KeyError, TypeError, IndexError) as e:
        raise BadInput(f"{path}: config.json lacks the recipe to continue from ({e})") from None


def _resolved(job: TrainJob, loaded: Loaded, base: Base, path: Path) -> TrainJob:
    """The job as the continued run does it: the model's architecture and tokenizer (given
    flags must agree, all disagreements reported at once), and the model's recipe, dropout
    and seed where not given; the learning rate, if not given, is that of the model's last
    epoch (with the same optimizer), so a model near its minimum is not thrown out of it."""
    arch, tokenizer = loaded.model.arch, loaded.tokenizer
    forget_bias = base.recipe.get("forget_bias", job.net.forget_bias)
    has = {**asdict(arch), "split": tokenizer.split, "lowercase": tokenizer.lowercase}
    has["cutoffs"] = list(arch.cutoffs) if arch.softmax == "adaptive" else None
    has["forget_bias"] = forget_bias
    asked = {**asdict(job.net), **asdict(job.tokenizer)}
    wrong = [
        f"{{{name}}} {json.dumps(has[name])}, not {json.dumps(asked[name])}"
        for name in _SHAPE
        if name in job.given and asked[name] != has[name]
    ]
    if wrong:
        raise SettingError(
            f"cannot continue {literal(path)}: it has {'; '.join(wrong)} (a continued model keeps "
            "its architecture and tokenizer)"
        )
    if not job.grow_vocab and job.given & set(_VOCABULARY):
        raise SettingError("with {continued}, {vocab_size} and {min_freq} need {grow_vocab}")
    cap = job.tokenizer.vocab_size
    if job.grow_vocab and 0 < cap < arch.vocab:
        raise SettingError(
            f"{literal(path)} has a vocabulary of {arch.vocab}, more than {{vocab_size}} {cap}: "
            "{grow_vocab} only adds words"
        )
    dropout = job.net.dropout if "dropout" in job.given else base.recipe.get("dropout")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise BadInput(f"{path}: config.json's dropout is damaged ({dropout!r})")
    return replace(
        job,
        net=ModelSettings(
            arch.embed,
            arch.hidden,
            arch.layers,
            dropout,
            arch.tied,
            forget_bias,
            softmax=arch.softmax,
            cutoffs=has["cutoffs"],
            div_value=arch.div_value,
        ),
        tokenizer=replace(job.tokenizer, split=tokenizer.split, lowercase=tokenizer.lowercase),
        recipe=_recipe(job, base, path),
        seed=job.seed if "seed" in job.given else base.recipe.get("seed", job.seed),
    )


def _recipe(job: TrainJob, base: Base, path: Path) -> Recipe:
    """The given recipe fields, and the model's for the others."""
    values = {}
    for f in fields(Recipe):
        value = getattr(job.recipe, f.name)
        values[f.name] = value if f.name in job.given else base.recipe.get(f.name, value)
    if "lr" not in job.given:
        same = values["optimizer"] == base.recipe.get("optimizer")
        values["lr"] = base.recipe.get("lr_end") if same else None  # None: the default
    try:
        return Recipe(**values)
    except (TypeError, ValueError) as e:
        raise BadInput(f"{path}: config.json's recipe is damaged ({e})") from None


def _old_validation(
    base: Base, tokenizer: Tokenizer, valid_tokens: int
) -> tuple[np.ndarray | None, str]:
    """The old validation text's first `valid_tokens` + 1 ids (what validation reads) in
    the old vocabulary (the tokenizer's ids from `base.vocab` on are read as unknown) and
    what it is; or None and why it cannot be read: its file is gone, or changed since (its
    token counts differ), or it was stdin. Its ids come through the token cache."""
    valid, files = base.data.get("valid"), base.data.get("files")
    sources = [valid] if valid else files if isinstance(files, list) else []
    what = str(valid) if valid else "the held-out tail of " + ", ".join(map(str, sources))
    if not sources or not all(isinstance(s, str) and s != STDIN for s in sources):
        return None, f"{what} was not read from files"
    try:
        with tokencache.Text(sources) as text:
            ids = text.token_ids(tokenizer)
    except BadInput as e:
        return None, f"{what} is gone ({e})"
    changed = None, f"{what} has changed since"
    if not valid:
        train_ids, ids = hold_out(ids, tokenizer.eos_id, VALID_FRACTION)
        if len(train_ids) != base.data.get("train_tokens"):
            return changed
    if len(ids) != base.data.get("valid_tokens") or len(ids) < 2:
        return changed
    ids = np.array(ids[: valid_tokens + 1])
    ids[ids >= base.vocab] = tokenizer.unk_id
    return ids, what


def _validation_ppl(model: LanguageModel, ids: np.ndarray, recipe: Recipe) -> float | None:
    """Perplexity as training validates: the first `valid_tokens`, in parallel streams."""
    ppl = evaluate(
        model,
        ids[: recipe.valid_tokens + 1],
        batch_size=recipe.eval_batch_size,
        bptt=recipe.bptt,
        accuracy=False,
    ).ppl
    return ppl if math.isfinite(ppl) else None
