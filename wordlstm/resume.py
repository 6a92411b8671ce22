"""Resuming training: the state `train` stops in, saved inside the model folder next to the
best weights (`Saver`), read back (`read`), and the checks that a resumed run is the same run.

The state goes into two extra files of the model's atomic save, plain JSON and npz arrays:
`training.json` (position, learning rate, best perplexity, history, the random generator's
state, and a fingerprint of the settings and data) and `training.npz` (the current weights,
the optimizer's arrays, the LSTM state carried into the next chunk). Ctrl-C is turned into a
flag that training polls after each step, so it always stops where a state can be taken.
"""

import contextlib
import hashlib
import io
import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wordlstm import store
from wordlstm.backend import to_host
from wordlstm.checkpoint import save_model
from wordlstm.errors import BadInput
from wordlstm.model import LanguageModel
from wordlstm.tokenizer import Tokenizer
from wordlstm.train import Epoch, TrainState

STATE_JSON = "training.json"
STATE_NPZ = "training.npz"
STATE_VERSION = 1
# Settings added since the first resumable version, with the value that trains as the
# versions before them did: a saved run whose fingerprint lacks one had that value
ADDED_SETTINGS = {"schedule": "plateau", "lr_floor": 0.0}

_NUMBER = (int, float)
# The JSON-side fields of a TrainState and the types they must have.
_SCALARS = {
    "epoch": int,
    "step": int,
    "lr": _NUMBER,
    "best_ppl": (*_NUMBER, type(None)),
    "retries": int,
    "loss_sum": _NUMBER,
    "tokens": int,
    "seconds": _NUMBER,
    "rng": dict,
    "averaged": int,
}
_EPOCH = {
    "epoch": int,
    "train_ppl": _NUMBER,
    "valid_ppl": _NUMBER,
    "lr": _NUMBER,
    "seconds": _NUMBER,
    "tokens": int,
    "improved": bool,
    "saved": bool,
}


@dataclass
class Saved:
    """A model folder to resume from: its training state, fingerprint, config and weights."""

    state: TrainState
    fingerprint: dict
    config: dict
    weights: dict[str, np.ndarray]


def to_files(state: TrainState, fingerprint: dict) -> dict[str, bytes]:
    """The extra files that make a model folder resumable from `state`."""
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "version": STATE_VERSION,
        "fingerprint": fingerprint,
        "state": _pack(state, "", arrays),
        "start": None if state.start is None else _pack(state.start, "start/", arrays),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return {STATE_JSON: json.dumps(doc).encode(), STATE_NPZ: buffer.getvalue()}


def read(path: Path) -> Saved:
    """The state to resume from in the model folder `path`; BadInput if there is none, or if
    it is damaged (the files are untrusted: plain JSON and numeric arrays, all types checked)."""
    try:
        config, _, weights = store.load(path)
    except BadInput as e:
        raise BadInput(f"nothing to resume: {e}") from None
    file = path / STATE_JSON
    if not file.is_file():
        raise BadInput(f"nothing to resume: {path} holds no training state")
    arrays = store.read_npz(path / STATE_NPZ)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        if doc["version"] != STATE_VERSION:
            raise ValueError(f"unknown version {doc['version']!r}")
        state = _unpack(doc["state"], "", arrays)
        if doc["start"] is not None:
            state.start = _unpack(doc["start"], "start/", arrays)
        fingerprint = _typed(doc["fingerprint"], {"settings": dict, "data": str})
        if not config.get("unfinished"):
            _typed(config["metrics"], {"valid_ppl": _NUMBER})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise BadInput(f"{file} is damaged ({type(e).__name__}: {e})") from None
    return Saved(state, fingerprint, config, weights)


def check_settings(saved: Saved, settings: dict, path: Path, epochs: int) -> None:
    """BadInput unless the saved run had these settings and has epochs left to train."""
    old = {**ADDED_SETTINGS, **saved.fingerprint["settings"]}
    for key in [*old, *(key for key in settings if key not in old)]:
        if old.get(key) != settings.get(key):
            raise BadInput(
                f"cannot resume {path}: it was trained with --{key.replace('_', '-')} "
                f"{json.dumps(old.get(key))}, not {json.dumps(settings.get(key))}; "
                "resume with the flags of the interrupted run"
            )
    if saved.state.epoch > epochs:
        raise BadInput(
            f"nothing to resume: {path} has finished all its {saved.state.epoch - 1} epochs "
            "(a larger --epochs trains it further)"
        )


def data_digest(tokenizer_json: str, train_ids: np.ndarray, valid_ids: np.ndarray) -> str:
    """A checksum of the vocabulary and token streams, to know a resumed run's data."""
    digest = hashlib.sha256(tokenizer_json.encode())
    for ids in (train_ids, valid_ids):
        digest.update(np.int64(len(ids)))
        digest.update(np.ascontiguousarray(ids, dtype=np.int32))
    return digest.hexdigest()


def check_data(saved: Saved, digest: str, path: Path) -> None:
    """BadInput unless the training and validation text are those of the saved run."""
    if saved.fingerprint["data"] != digest:
        raise BadInput(
            f"cannot resume {path}: its training or validation text is not the one it was "
            "trained on"
        )


class Saver:
    """What `train` calls to save: the model folder with the best weights so far, or later
    ones near them (`Epoch.saved`; until an epoch is validated, the current ones, marked
    unfinished), and the state to resume from."""

    def __init__(
        self, path: Path, model: LanguageModel, tokenizer: Tokenizer, facts: dict, fingerprint: dict
    ) -> None:
        self.path, self.model, self.tokenizer = path, model, tokenizer
        self.facts, self.fingerprint = facts, fingerprint
        self.best: dict | None = None  # the metrics of the best weights
        self.best_weights: dict | None = None
        self.history: list[Epoch] = []
        self.state: TrainState | None = None

    def resume_from(self, saved: Saved) -> None:
        """Takes the best weights and history of the folder being resumed."""
        self.state = saved.state
        self.history = saved.state.history
        if not saved.config.get("unfinished"):
            self.best, self.best_weights = saved.config["metrics"], saved.weights

    def __call__(self, state: TrainState, result: Epoch | None) -> None:
        """Saves the folder for `state`; `result` is the validation just done, if any."""
        partial = result is not None and result.epoch == state.epoch  # validated out of time
        self.history = [*state.history, *([result] if partial else [])]
        if result is not None and result.saved:
            self.best_weights = {n: np.array(to_host(a)) for n, a in self.model.weights().items()}
            self.best = {
                "epoch": result.epoch,
                "valid_ppl": result.valid_ppl,
                "train_ppl": result.train_ppl,
                "trained_tokens": sum(e.tokens for e in self.history),
            }
        facts = {**self.facts, "history": [asdict(e) for e in self.history]}
        if self.best is None:
            facts["unfinished"] = True
        else:
            facts["metrics"] = self.best
        save_model(
            self.path,
            self.model,
            self.tokenizer,
            facts,
            weights=self.best_weights,
            extra=to_files(state, self.fingerprint),
        )
        self.state = state


@contextlib.contextmanager
def deferred_sigint() -> Iterator[Callable[[], bool]]:
    """While inside, the first SIGINT (Ctrl-C) only makes the returned function true, for
    training to stop at the end of its step and save; a second one interrupts as usual.
    Outside the main thread, where Python runs no signal handlers, it is never true."""
    count = 0

    def handler(signum, frame) -> None:
        nonlocal count
        count += 1
        if count > 1:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: count > 0
    finally:
        signal.signal(signal.SIGINT, previous)


def _pack(state: TrainState, prefix: str, arrays: dict) -> dict:
    """The JSON side of a state; its arrays go into `arrays` under prefix/group/name."""
    groups = {
        "params": state.params,
        "optimizer": state.optimizer,
        "hidden": state.hidden or {},
        "average": state.average or {},
    }
    for group, named in groups.items():
        for name, array in named.items():
            arrays[f"{prefix}{group}/{name}"] = array
    doc = {key: getattr(state, key) for key in _SCALARS}
    doc["history"] = [asdict(e) for e in state.history]
    return doc


def _unpack(doc: dict, prefix: str, arrays: dict) -> TrainState:
    """The state that `_pack` wrote; ValueError, KeyError or TypeError if it is damaged."""

    def group(name: str) -> dict[str, np.ndarray]:
        start = f"{prefix}{name}/"
        return {key[len(start) :]: a for key, a in arrays.items() if key.startswith(start)}

    _typed(doc, {**_SCALARS, "history": list})
    return TrainState(
        **{key: doc[key] for key in _SCALARS},
        history=[Epoch(**_typed(_with_improved(e), _EPOCH)) for e in doc["history"]],
        params=group("params"),
        optimizer=group("optimizer"),
        hidden=group("hidden") or None,
        average=group("average") or None,
    )


def _with_improved(epoch: dict) -> dict:
    """An epoch of the history; one written before `improved` existed gets it from `saved`,
    which meant the same then."""
    if isinstance(epoch, dict) and "improved" not in epoch:
        return {**epoch, "improved": epoch.get("saved")}
    return epoch


def _typed(doc: dict, types: dict) -> dict:
    """`doc` if it is a dict holding each key of `types` with a value of that type (a bool
    only where bool is asked for); TypeError otherwise."""
    if not isinstance(doc, dict):
        raise TypeError(f"expected an object, got {type(doc).__name__}")
    for key, kind in types.items():
        value = doc[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise TypeError(f"{key} is {value!r}")
    return doc
