"""The checkpoint store: where models live, and how they are saved and loaded safely.

A model is a folder holding `config.json`, `tokenizer.json`, `model.safetensors` and optional
extra files (resume state). Folders written by wordlstm 0.1 hold `weights.npz` instead: they
load as they did, and their next save writes `model.safetensors`. A model given by NAME lives
in `home()`; any folder can be given by path.

A save survives a kill at any instant. `save` writes the complete model into a fresh sibling
folder `.NAME.new-PID` and fsyncs every file and that folder. Then it renames the current model
(if any) to `.NAME.old`, renames the new folder to NAME, fsyncs the parent and deletes
`.NAME.old`. At every instant NAME or `.NAME.old` is a complete model, so the recovery that runs
before a model is read or written can always restore one:

- NAME missing, `.NAME.old` present (killed between the two renames): rename `.NAME.old` back;
- both present (killed before or while deleting `.NAME.old`): delete `.NAME.old`;
- `.NAME.new-PID` or `.NAME.del-PID` whose process is gone (an unfinished save or removal):
  delete it.

Renames and recovery hold an exclusive `flock` on the parent folder and loads a shared one, so a
load never sees a model between the two renames and never repairs a save that is still running.
Loading never runs code from the files: JSON, safetensors (a JSON header and raw arrays, by
design of the format), and npz read with `allow_pickle=False`.

A training run holds `writer_lock` on `.NAME.lock` beside the model for its whole length, so a
second run into the same model is refused at once; the kernel drops a flock when its process
dies, so a killed run never leaves the model locked.

A model is never replaced by accident: training into a folder that holds one is refused
unless the run resumes it, or replaces it on purpose (`train --force`). A replacing run saves
nothing until its first epoch is validated: until then the folder holds the old model, its
resume state included, byte for byte, and the run's first save replaces it as any save does.
So a replacing run stopped before that (Ctrl-C, a kill) leaves the old model as it was (Ctrl-C
says that nothing was saved), and no folder ever holds an unvalidated model in place of a good
one. (A run into a new name does save its unfinished first epoch on Ctrl-C, to resume.) There
is no side folder for a replacing run's first epoch: one name, one state, nothing to recover.
"""

import contextlib
import difflib
import fcntl
import json
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from .errors import BadInput, RunFailure, WordlstmError, first_line, literal

FORMAT_VERSION = 1
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
LEGACY_WEIGHTS = "weights.npz"  # wordlstm 0.1's weights file, still read
STATE_JSON, STATE_NPZ = "training.json", "training.npz"  # the state to resume from (resume)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LEFTOVER = re.compile(r"\.(.+)\.(?:old|(?:new|del)-\d+)")
# What parsing a damaged or hostile npz can raise (RuntimeError covers NotImplementedError).
_DAMAGED = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    RuntimeError,
    struct.error,
    zlib.error,
)


class Busy(RunFailure):
    """Another process holds the writer lock of a model (`holder`: its pid as it wrote it)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message, names_settings=True)
        self.holder = holder


def home() -> Path:
    """The store folder: $WORDLSTM_HOME, else $XDG_DATA_HOME/wordlstm or ~/.local/share/wordlstm."""
    if os.environ.get("WORDLSTM_HOME"):
        return Path(os.path.abspath(os.path.expanduser(os.environ["WORDLSTM_HOME"])))
    data = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(data):  # the XDG spec says to ignore an empty or relative value
        data = os.path.expanduser("~/.local/share")
    return Path(data) / "wordlstm"


def resolve(model: str) -> Path:
    """The folder a --model argument means: a path, or a NAME in the store (need not exist).

    A path contains a separator, is "." or "..", or starts with "~"; anything else is a name,
    and a valid name cannot leave the store.
    """
    separators = {os.sep, os.altsep} - {None}
    if model in (".", "..") or model.startswith("~") or any(s in model for s in separators):
        return Path(os.path.abspath(os.path.expanduser(model)))
    if not _NAME.fullmatch(model):
        raise BadInput(
            f"invalid model name {model!r}: use letters, digits, '.', '_' and '-' "
            "(at most 100 characters), or give a path such as ./FOLDER"
        )
    return home() / model


def save(
    path: Path,
    *,
    config: dict,
    tokenizer_json: str,
    weights: dict[str, np.ndarray],
    extra: dict[str, bytes] | None = None,
) -> None:
    """Save a complete model to the folder `path`, atomically replacing any model there.

    `config` gets `format_version` added; `weights` are stored as float32 (they must be finite);
    `extra` maps plain file names to contents. Files of the previous model that are not part of
    the new one are gone afterwards. Refuses to replace a folder that is not a wordlstm model.
    """
    path = _normalize(path)
    arrays = {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in weights.items()}
    for key, array in arrays.items():
        if not np.isfinite(array).all():
            raise RunFailure(f"refusing to save {path}: weight {key!r} holds NaN or infinity")
    settings = {key: value for key, value in config.items() if key != "format_version"}
    files = {
        CONFIG: json.dumps({"format_version": FORMAT_VERSION, **settings}, indent=2).encode(),
        TOKENIZER: tokenizer_json.encode(),
        WEIGHTS: safetensors.numpy.save(arrays),
    }
    for name, data in (extra or {}).items():
        if not _NAME.fullmatch(name) or name in (CONFIG, TOKENIZER, WEIGHTS, LEGACY_WEIGHTS):
            raise ValueError(f"invalid extra file name {name!r}")
        files[name] = bytes(data)
    _check_replaceable(path)
    new = path.parent / f".{path.name}.new-{os.getpid()}"
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if new.exists():  # left by a dead process that had our pid
                shutil.rmtree(new)
            new.mkdir()
            for name, data in files.items():
                with open(new / name, "xb") as f:
                    f.write(data)
                    _sync(f)
            _fsync_folder(new)
            with _locked(path.parent, exclusive=True):
                _repair(path)
                _check_replaceable(path)
                _swap(new, path)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
    except OSError as e:
        raise RunFailure(f"cannot save the model to {path}: {first_line(e)}") from e


def load(path: Path) -> tuple[dict, str, dict[str, np.ndarray]]:
    """Read the model in folder `path`: (config, tokenizer.json text, float32 weights), all
    under one lock so that the three always come from the same save.

    Checks the format version and that the files are readable and the arrays float32 and
    finite; names and shapes are for the model code to check. Problems raise BadInput.
    """
    path = _normalize(path)
    _recover(path)
    if not path.exists():
        raise _not_found(path)
    with _locked(path.parent, exclusive=False):
        config = _read_config(path)
        version = config.get("format_version")
        if type(version) is not int or version < 1:
            raise BadInput(f"{path / CONFIG} has no valid format_version")
        if version > FORMAT_VERSION:
            raise BadInput(
                f"{path} has format version {version}, newer than this wordlstm reads "
                f"({FORMAT_VERSION}): upgrade wordlstm"
            )
        if not (path / TOKENIZER).is_file():  # missing, or a FIFO or device that would hang
            raise BadInput(f"{path} is incomplete: {TOKENIZER} is missing")
        try:
            tokenizer = (path / TOKENIZER).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"cannot read {path / TOKENIZER}: {first_line(e)}") from None
        weights = _read_weights(path)
    return config, tokenizer, weights


@dataclass
class Entry:
    """A folder in the store, as `wordlstm models` lists it."""

    name: str
    path: Path
    config: dict | None  # its config.json, if that is readable
    problem: str | None  # why it is not a loadable model folder; None if it is one
    size: int  # bytes of its files


def survey() -> list[Entry]:
    """Every folder in the store that a name can address, by name: the models, and the
    folders that are not loadable models, with what is wrong. Files and hidden entries (locks,
    leftovers of saves, which are repaired first) are not listed. Checks the files a model
    needs, not the weights' contents: listing stays fast."""
    root = home()
    if not root.is_dir():
        return []
    for entry in os.listdir(root):
        leftover = _LEFTOVER.fullmatch(entry)
        if leftover and _NAME.fullmatch(leftover[1]):
            with contextlib.suppress(WordlstmError):
                _recover(root / leftover[1])
    with _locked(root, exclusive=False):
        return [
            _entry(name, root / name)
            for name in sorted(os.listdir(root))
            if _NAME.fullmatch(name) and (root / name).is_dir()
        ]


def _entry(name: str, path: Path) -> Entry:
    """The store's folder `path` as listed: its config and whatever keeps it from loading."""
    config, problem = None, None
    try:
        config = _read_config(path)
        if "format_version" not in config:
            raise BadInput(f"{path / CONFIG} is not a wordlstm model's (no format_version)")
        for needed in (TOKENIZER, _weights_file(path).name):
            if not (path / needed).is_file():
                raise BadInput(f"{path} is incomplete: {needed} is missing")
    except BadInput as e:
        problem = str(e)
    size = 0
    with contextlib.suppress(OSError), os.scandir(path) as files:
        size = sum(f.stat(follow_symlinks=False).st_size for f in files if f.is_file())
    return Entry(name, path, config, problem, size)


def read_config(path: Path) -> dict:
    """The config.json of the model folder `path`, without its weights; BadInput if none."""
    path = _normalize(path)
    _recover(path)
    if not path.exists():
        raise _not_found(path)
    with _locked(path.parent, exclusive=False):
        return _read_config(path)


def holds_model(path: Path) -> bool:
    """Whether the folder `path` holds a wordlstm model (after repairing an interrupted save)."""
    path = _normalize(path)
    _recover(path)
    return _model_config(path) is not None


def remove(path: Path) -> None:
    """Delete the model folder `path` (a symlink to one: just the link); nothing else.
    Holds the model's writer lock, so a model in training is refused (RunFailure)."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        _check_is_model(path)
        path.unlink()
        return
    path = _normalize(path)
    _recover(path)
    _check_is_model(path)
    trash = path.parent / f".{path.name}.del-{os.getpid()}"
    try:
        with writer_lock(path), _locked(path.parent, exclusive=True):
            os.rename(path, trash)
            _fsync_folder(path.parent)
        shutil.rmtree(trash)
    except Busy as e:
        raise RunFailure(
            f"cannot remove {path}: it is being trained (pid {e.holder}); wait for the run to "
            "end, or stop it first"
        ) from None
    except OSError as e:
        raise RunFailure(f"cannot remove {path}: {first_line(e)}") from e


def read_npz(file: Path) -> dict[str, np.ndarray]:
    """Every array of an npz file, fully read and never unpickled; BadInput if it is damaged."""
    import zipfile  # here: only 0.1's weights and training states are zip archives

    if not file.is_file():
        raise BadInput(f"{file.parent} is incomplete: {file.name} is missing")
    try:
        with open(file, "rb") as f:  # ours to close, also when np.load fails half-way
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
            with data:
                arrays = {key: data[key] for key in data.files}
    except MemoryError as e:
        raise RunFailure(f"not enough memory to load {file}") from e
    except (*_DAMAGED, zipfile.BadZipFile) as e:
        raise BadInput(f"{file} is damaged or not an npz archive: {first_line(e)}") from e
    _check_numbers(file, arrays)
    return arrays


def read_safetensors(file: Path) -> dict[str, np.ndarray]:
    """Every array of a safetensors file, fully read; BadInput if it is damaged."""
    if not file.is_file():
        raise BadInput(f"{file.parent} is incomplete: {file.name} is missing")
    try:
        arrays = safetensors.numpy.load(file.read_bytes())
    except MemoryError as e:
        raise RunFailure(f"not enough memory to load {file}") from e
    except (*_DAMAGED, SafetensorError, TypeError) as e:
        raise BadInput(f"{file} is damaged or not a safetensors file: {first_line(e)}") from e
    _check_numbers(file, arrays)
    return arrays


def _check_numbers(file: Path, arrays: dict) -> None:
    """BadInput unless every array holds finite numbers."""
    for key, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise BadInput(f"{file}: {key!r} is not an array of numbers")
        if not np.isfinite(array).all():
            raise BadInput(f"{file}: {key!r} holds NaN or infinity")


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold the one-writer lock of the model folder `path` (which need not exist yet).

    Raises RunFailure at once if another process holds it. The lock file `.NAME.lock` is
    deleted on leaving; one that a killed process left behind is unlocked and simply reused.
    """
    path = _normalize(path)
    lock = path.parent / f".{path.name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _lock_file(lock, path)
    except OSError as e:
        raise RunFailure(f"cannot lock {path} for writing: {first_line(e)}") from e
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # still held: whoever opened this file meanwhile is refused
        os.close(fd)


def writer_pid(path: Path) -> int | None:
    """The pid in the writer lock file of the model folder `path` if that process is alive
    (a run holds the lock), else None. Only reads: probing the lock itself could make a run
    that starts at that instant fail."""
    path = _normalize(path)
    try:
        text = (path.parent / f".{path.name}.lock").read_text(encoding="ascii")
        pid = int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) else None


def _lock_file(lock: Path, path: Path) -> int:
    """A descriptor of the file `lock` with an exclusive flock on it and our pid written in."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if _take(fd, lock, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # a leaving holder deleted the file we locked: lock the new one


def _take(fd: int, lock: Path, path: Path) -> bool:
    """Lock the file open as `fd` unless another process holds it (RunFailure); False if the
    name `lock` no longer points to that file, whose lock would then guard nothing."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = (os.read(fd, 20).decode("ascii", "replace").split() or ["?"])[0]
        raise Busy(
            f"{literal(path)} is being trained by another process (pid {literal(holder)}); "
            "wait for it to end or use another {model}",
            holder,
        ) from None
    try:
        if not os.path.samestat(os.fstat(fd), os.stat(lock)):
            return False
    except FileNotFoundError:
        return False
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return True


def _normalize(path: Path) -> Path:
    """The absolute, symlink-free form of a model folder path (renames act on the real folder)."""
    real = Path(os.path.realpath(os.path.expanduser(path)))
    if not real.name:
        raise BadInput(f"{path} cannot be a model folder")
    return real


def _in_store(path: Path) -> bool:
    return path.parent == Path(os.path.realpath(home()))


def _not_found(path: Path) -> BadInput:
    """The error for a model that is not there, saying what to do: the store's name closest
    to a mistyped one, or how to train a first model."""
    if not _in_store(path):
        return BadInput(f"no model folder at {path}")
    name = path.name
    names = _names(path.parent)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return BadInput(f"no model named {name!r}; did you mean {close[0]!r}?")
    if not names:
        flag = "" if name == "default" else f" --model {name}"
        return BadInput(
            f"no model named {name!r}: the store is empty; train one with "
            f"'wordlstm train FILE{flag}'"
        )
    return BadInput(f"no model named {name!r} (see 'wordlstm models')")


def _names(root: Path) -> list[str]:
    """The names of the folders in the store folder `root` (none if it cannot be read)."""
    try:
        entries = os.listdir(root)
    except OSError:
        return []
    return sorted(n for n in entries if _NAME.fullmatch(n) and (root / n).is_dir())


def _read_config(path: Path) -> dict:
    """The parsed config.json of model folder `path`; BadInput if there is none or it is bad."""
    file = path / CONFIG
    if not file.is_file():
        if not path.exists():
            raise _not_found(path)
        raise BadInput(f"{path} is not a model folder (no {CONFIG})")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise BadInput(f"cannot read {file}: {first_line(e)}") from e
    if not isinstance(config, dict):
        raise BadInput(f"{file} is not a JSON object")
    return config


def _model_config(path: Path) -> dict | None:
    """The config of `path` if it is a wordlstm model folder (of any format version), else None."""
    try:
        config = _read_config(path)
    except BadInput:
        return None
    return config if "format_version" in config else None


def _check_is_model(path: Path) -> None:
    if not path.exists():
        raise _not_found(path)
    if _model_config(path) is None:
        raise BadInput(f"refusing to remove {path}: it is not a wordlstm model folder")


def _check_replaceable(path: Path) -> None:
    """Refuse to save over anything but a wordlstm model or an empty folder."""
    if not os.path.lexists(path) or _model_config(path) is not None:
        return
    if path.is_dir() and not any(path.iterdir()):
        return
    raise BadInput(f"refusing to overwrite {path}: it is not a wordlstm model folder")


def _weights_file(path: Path) -> Path:
    """The weights file of model folder `path`: model.safetensors, or 0.1's weights.npz if
    only that one is there."""
    if not (path / WEIGHTS).exists() and (path / LEGACY_WEIGHTS).exists():
        return path / LEGACY_WEIGHTS
    return path / WEIGHTS


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    """Every array of model folder `path`'s weights; BadInput if they are damaged or not all
    float32."""
    file = _weights_file(path)
    arrays = read_npz(file) if file.name == LEGACY_WEIGHTS else read_safetensors(file)
    for key, array in arrays.items():
        if array.dtype.kind != "f" or array.itemsize != 4:
            raise BadInput(f"{file}: {key!r} is not a float32 array")
    return {key: array.astype(np.float32, copy=False) for key, array in arrays.items()}


def _swap(new: Path, path: Path) -> None:
    """Put the complete folder `new` in the place of `path` (exclusive lock held)."""
    if os.path.lexists(path):
        os.rename(path, path.parent / f".{path.name}.old")
    try:
        os.rename(new, path)
    finally:
        _repair(path)  # deletes .old after a good rename, puts it back after a failed one


def _recover(path: Path) -> None:
    """Repair what an interrupted save or removal of `path` left, if anything."""
    parent = path.parent
    try:
        if not parent.is_dir():
            return
        for entry in os.listdir(parent):
            leftover = _LEFTOVER.fullmatch(entry)
            if leftover and leftover[1] == path.name:
                with _locked(parent, exclusive=True):
                    _repair(path)
                return
    except OSError as e:
        raise RunFailure(f"cannot repair an interrupted save of {path}: {first_line(e)}") from e


def _repair(path: Path) -> None:
    """Bring back or delete `.NAME.old` and delete dead temporary folders (exclusive lock held)."""
    parent = path.parent
    old = parent / f".{path.name}.old"
    if old.is_dir() and not old.is_symlink():
        if os.path.lexists(path):
            _fsync_folder(parent)  # make the new model's rename durable before the old goes
            shutil.rmtree(old)
        else:
            os.rename(old, path)
            _fsync_folder(parent)
    temporary = re.compile(rf"\.{re.escape(path.name)}\.(?:new|del)-(\d+)")
    for entry in os.listdir(parent):
        match = temporary.fullmatch(entry)
        if match and not _alive(int(match[1])):
            shutil.rmtree(parent / entry)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def _locked(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold a flock on `folder`: exclusive to rename models in it, shared to read one."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without flock: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_status(path: Path, config: dict) -> str:
    """ "training" while a process holds the writer lock of the model folder `path`,
    "interrupted" if the run that saved it was stopped before its end (`interrupted`), else
    "finished"."""
    if writer_pid(path) is not None:
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
