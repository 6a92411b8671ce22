"""The training state's files: what `train` stops in, saved inside the model folder next
to the best weights (`saver`), and read back to resume (`read`, `read_run`).

The state goes into two extra files of the model's atomic save, plain JSON and npz arrays
(read with allow_pickle=False): `training.json` (position, learning rate, best perplexity,
history, the random generator's state, and a fingerprint of the settings and data, which
`identity` compares) and `training.npz` (the current weights, the optimizer's arrays, the
LSTM state carried into the next chunk). Their fields are TrainState's.
"""

import io
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np

from wordlstm import store
from wordlstm.errors import BadInput
from wordlstm.training import Epoch, TrainState

STATE_VERSION = 1
_NUMBER = (int, float)


def _json_types(hint) -> tuple[type, ...]:
    """The types that the JSON value of a field annotated `hint` may have: an int where a
    float is asked for, dict for dict[...]."""
    kinds: list[type] = []
    for part in typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,):
        kinds += _NUMBER if part is float else (typing.get_origin(part) or part,)
    return tuple(kinds)


def _holds_arrays(hint) -> bool:
    """Whether a field annotated `hint` holds named arrays (dict[str, np.ndarray])."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return any(typing.get_args(part) == (str, np.ndarray) for part in parts)


# A TrainState's fields as the files hold them, from its annotations: the groups of named
# arrays (training.npz), and the JSON values with the types they must have (training.json)
_HINTS = typing.get_type_hints(TrainState)
_ARRAYS = [f.name for f in fields(TrainState) if _holds_arrays(_HINTS[f.name])]
_OPTIONAL_ARRAYS = {name for name in _ARRAYS if type(None) in typing.get_args(_HINTS[name])}
_SCALARS = {
    f.name: _json_types(_HINTS[f.name])
    for f in fields(TrainState)
    if f.name not in (*_ARRAYS, "history", "start")
}
_EPOCH = {name: _json_types(hint) for name, hint in typing.get_type_hints(Epoch).items()}
# fields added to Epoch later, with the value an epoch written before them reads as
_EPOCH_ADDED = {f.name: f.default for f in fields(Epoch) if f.default is not MISSING}


@dataclass
class Saved:
    """A model folder to resume from: its training state, fingerprint, config and weights."""

    state: TrainState
    fingerprint: dict
    config: dict
    weights: dict[str, np.ndarray]


def state_files(state: TrainState, fingerprint: dict) -> dict[str, bytes]:
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
    return {store.STATE_JSON: json.dumps(doc).encode(), store.STATE_NPZ: buffer.getvalue()}


def read(path: Path) -> Saved:
    """The state to resume from in the model folder `path`; BadInput if there is none, or if
    it is damaged (the files are untrusted: plain JSON and numeric arrays, all types checked)."""
    try:
        config, _, weights = store.load(path)
    except BadInput as e:
        raise BadInput(f"nothing to resume: {e}") from None
    file = path / store.STATE_JSON
    if not file.is_file():
        raise BadInput(f"nothing to resume: {path} holds no training state")
    arrays = store.read_npz(path / store.STATE_NPZ)
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
    file = path / store.STATE_JSON
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


def _pack(state: TrainState, prefix: str, arrays: dict) -> dict:
    """The JSON side of a state; its arrays go into `arrays` under prefix/group/name."""
    for group in _ARRAYS:
        for name, array in (getattr(state, group) or {}).items():
            arrays[f"{prefix}{group}/{name}"] = array
    doc = {key: getattr(state, key) for key in _SCALARS}
    doc["history"] = [asdict(e) for e in state.history]
    return doc


def _unpack(doc: dict, prefix: str, arrays: dict) -> TrainState:
    """The state that `_pack` wrote; ValueError, KeyError or TypeError if it is damaged."""

    def group(name: str) -> dict[str, np.ndarray]:
        start = f"{prefix}{name}/"
        return {key[len(start) :]: a for key, a in arrays.items() if key.startswith(start)}

    _typed(doc, {**_SCALARS, "history": (list,)})
    return TrainState(
        **{key: doc[key] for key in _SCALARS},
        history=[Epoch(**_typed(_older_epoch(e), _EPOCH)) for e in doc["history"]],
        **{name: group(name) or (None if name in _OPTIONAL_ARRAYS else {}) for name in _ARRAYS},
    )


def _older_epoch(epoch: dict) -> dict:
    """An epoch of the history; one written before `improved` existed gets it from `saved`,
    which meant the same then, and one written before a field with a default (`averaged`)
    gets that default."""
    if not isinstance(epoch, dict):
        return epoch
    if "improved" not in epoch:
        epoch = {**epoch, "improved": epoch.get("saved")}
    return {**_EPOCH_ADDED, **epoch}


def _typed(doc: dict, expected: dict) -> dict:
    """`doc` if it is a dict holding each key of `expected` with a value of that type (or of
    one of those types; a bool only where bool is asked for); TypeError otherwise."""
    if not isinstance(doc, dict):
        raise TypeError(f"expected an object, got {type(doc).__name__}")
    for key, kinds in expected.items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        value = doc[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise TypeError(f"{key} is {value!r}")
    return doc
