"""A resumed run's identity: the same settings and the same text as the interrupted run, and
epochs left to train."""

import hashlib
from pathlib import Path

import numpy as np

from wordlstm.data import blocks
from wordlstm.errors import BadInput, Difference, SettingError, SettingsDiffer, literal
from wordlstm.resume import Saved

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
    "softmax": "full",
    "cutoffs": None,
    "div_value": 4.0,
}


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
        raise SettingError(
            f"nothing to resume: {literal(path)} has finished all its "
            f"{saved.state.epoch - 1} epochs (a larger {{epochs}} trains it further)"
        )


def data_digest(tokenizer_json: str, train_ids: np.ndarray, valid_ids: np.ndarray) -> str:
    """A checksum of the vocabulary and token streams, to know a resumed run's data."""
    digest = hashlib.sha256(tokenizer_json.encode())
    for ids in (train_ids, valid_ids):
        digest.update(np.int64(len(ids)))
        for block in blocks(ids):
            digest.update(np.ascontiguousarray(block, dtype=np.int32))
    return digest.hexdigest()


def check_data(saved: Saved, digest: str, path: Path) -> None:
    """BadInput unless the training and validation text are those of the saved run."""
    if saved.fingerprint["data"] != digest:
        raise BadInput(
            f"cannot resume {path}: its training or validation text is not the one it was "
            "trained on"
        )
