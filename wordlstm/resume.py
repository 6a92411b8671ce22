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
PENDING = "pending_run"  # in config.json: the folder keeps its model for a newer run whose
# state training.json holds and which has no validated epoch yet
# Settings added since the first resumable version, with the value that trains as the
# versions before them did: a saved run whose fingerprint lacks one had that value
ADDED_SETTINGS = {
    "schedule": "plateau",
    "lr_floor": 0.0,
    "dropout_input": None,
    "dropout_hidden": None,
    "locked": False,
    "embed_dropout": 0.0,
    "weight_drop": 0.0,
    "ar": 0.0,
    "tar": 0.0,
}

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


@dataclass
class Difference:
    """A setting of a resumed run that is not the interrupted run's."""

    field: str  # as in the settings (trainjob._settings)
    given: object
    saved: object


class SettingsDiffer(BadInput):
    """A resumed run's settings are not the interrupted run's: all the `differences`."""

    def __init__(self, path: Path, differences: list[Difference]) -> None:
        listed = ", ".join(
            f"{d.field} {json.dumps(d.given)} (the run used {json.dumps(d.saved)})"
            for d in differences
        )
        super().__init__(f"cannot resume {path}: {listed}; resume with the run's own settings")
        self.differences = differences


@dataclass
class SavedRun:
    """What a resumable model folder records of the run that saved it, to run it again."""

    settings: dict  # the fingerprint's (trainjob._settings), e.g. "dropout": "auto"
    files: list[str]  # absolute paths, "-" for standard input
    valid: str | None
    epochs: int
    max_time: float | None


def read_run(path: Path) -> SavedRun:
    """The settings, files and budget of the run that saved the model folder `path`, without
    its arrays; BadInput if it holds no state to resume or the files are damaged."""
    try:
        config = store.read_config(path)
    except BadInput as e:
        raise BadInput(f"nothing to resume: {e}") from None
    file = path / STATE_JSON
    if not file.is_file():
        raise BadInput(f"nothing to resume: {path} holds no training state")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        settings = _typed(doc["fingerprint"], {"settings": dict})["settings"]
        data = _typed(config["data"], {"files": list, "valid": (str, type(None))})
        recipe = _typed(config["recipe"], {"epochs": int, "max_time": (*_NUMBER, type(None))})
        if not all(isinstance(f, str) for f in data["files"]):
            raise TypeError("a file name is not a string")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        reason = f"{type(e).__name__}: {e}"
        raise BadInput(f"cannot read the run to resume in {path} ({reason})") from None
    return SavedRun(settings, data["files"], data["valid"], recipe["epochs"], recipe["max_time"])


def check_settings(saved: Saved, settings: dict, path: Path, epochs: int) -> None:
    """BadInput unless the saved run had these settings (SettingsDiffer, with every
    difference) and has epochs left to train."""
    old = {**ADDED_SETTINGS, **saved.fingerprint["settings"]}
    differences = [
        Difference(key, settings.get(key), old.get(key))
        for key in [*old, *(key for key in settings if key not in old)]
        if old.get(key) != settings.get(key)
    ]
    if differences:
        raise SettingsDiffer(path, differences)
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


@dataclass
class Kept:
    """The model files a run leaves in its folder until it has a validated epoch."""

    config: dict
    tokenizer_json: str
    weights: dict[str, np.ndarray]


class Saver:
    """What `train` calls to save: the model folder with the best weights so far, or later
    ones near them (`Epoch.saved`; until an epoch is validated, the current ones, marked
    unfinished; with `hold`, nothing; with `keep`, the kept model marked PENDING beside this
    run's state), and the state to resume from. When the time budget ended the run,
    config.json says so (`ended`), to tell it from a stopped run."""

    def __init__(
        self,
        path: Path,
        model: LanguageModel,
        tokenizer: Tokenizer,
        facts: dict,
        fingerprint: dict,
        *,
        hold: bool = False,
        keep: Kept | None = None,
    ) -> None:
        self.path, self.model, self.tokenizer = path, model, tokenizer
        self.facts, self.fingerprint = facts, fingerprint
        self.hold, self.keep = hold, keep
        self.best: dict | None = None  # the metrics of the best weights
        self.best_weights: dict | None = None
        self.history: list[Epoch] = []
        self.state: TrainState | None = None  # the last one given
        self.written = False  # whether the folder holds a save of this run
        self.out_of_time = False  # whether the time budget ended the run

    def resume_from(self, saved: Saved) -> None:
        """Takes the best weights and history of the folder being resumed."""
        self.state = saved.state
        self.history = saved.state.history
        self.written = True
        if not (saved.config.get("unfinished") or saved.config.get(PENDING)):
            self.best, self.best_weights = saved.config["metrics"], saved.weights

    def __call__(self, state: TrainState, result: Epoch | None) -> None:
        """Saves the folder for `state`; `result` is the validation just done, if any."""
        partial = result is not None and result.epoch == state.epoch  # validated out of time
        self.out_of_time |= partial
        self.history = [*state.history, *([result] if partial else [])]
        if result is not None and result.saved:
            self.best_weights = {n: np.array(to_host(a)) for n, a in self.model.weights().items()}
            self.best = {
                "epoch": result.epoch,
                "valid_ppl": result.valid_ppl,
                "train_ppl": result.train_ppl,
                "trained_tokens": sum(e.tokens for e in self.history),
            }
        self.state = state
        if self.best is None and self.hold:
            return
        if self.best is None and self.keep is not None:
            kept = self.keep
            store.save(
                self.path,
                config={**kept.config, PENDING: True},
                tokenizer_json=kept.tokenizer_json,
                weights=kept.weights,
                extra=to_files(state, self.fingerprint),
            )
            self.written = True
            return
        self.keep = None  # replaced by validated weights for good
        facts = {**self.facts, "history": [asdict(e) for e in self.history]}
        if self.best is None:
            facts["unfinished"] = True
        else:
            facts["metrics"] = self.best
        if self.out_of_time:
            facts["ended"] = "time budget"
        save_model(
            self.path,
            self.model,
            self.tokenizer,
            facts,
            weights=self.best_weights,
            extra=to_files(state, self.fingerprint),
        )
        self.written = True

    def ran_out_of_time(self) -> None:
        """Records in the folder that the time budget ended the run, if its last save did not
        (the budget ran out between an epoch's save and the next one's first step)."""
        if self.written and not self.out_of_time:
            self.out_of_time = True
            self(self.state, None)


def run_status(path: Path, config: dict) -> str:
    """ "training" while a process holds the writer lock of the model folder `path`,
    "interrupted" if the run that saved it was stopped before its end (`interrupted`), else
    "finished"."""
    if store.writer_pid(path) is not None:
        return "training"
    return "interrupted" if interrupted(path, config) else "finished"


def interrupted(path: Path, config: dict) -> bool:
    """Whether the run that saved the model folder `path` (`config` is its config.json) was
    stopped before its end, by Ctrl-C or a kill: it left a state to resume from, and neither
    trained all its epochs nor ran out of its time budget."""
    if config.get("unfinished"):
        return True
    if config.get("ended") or not (path / STATE_JSON).is_file():
        return False
    history, recipe = config.get("history"), config.get("recipe")
    epochs = recipe.get("epochs") if isinstance(recipe, dict) else None
    return isinstance(history, list) and type(epochs) is int and len(history) < epochs


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
