"""The checkpoint store: locations, names, round trips, hostile files and kills mid-save."""

import contextlib
import inspect
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_env, read_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save

from wordlstm import store
from wordlstm.errors import BadInput, RunFailure

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("WORDLSTM_HOME", str(root))
    return root


def model(counter: int = 0, size: int = 6) -> dict:
    """Keyword arguments for store.save whose every part records `counter`."""
    return {
        "config": {"counter": counter, "hidden": 2},
        "tokenizer_json": json.dumps({"counter": counter}),
        "weights": {
            "encoder.weight": np.full((3, 2), counter, np.float32),
            "rnn.weight_ih_l0": np.arange(size, dtype=np.float32) + counter,
            "decoder.bias": np.full(3, counter, np.float32),
        },
        "extra": {"training.json": str(counter).encode()},
    }


def hidden_entries(folder: Path) -> list[str]:
    return sorted(entry for entry in os.listdir(folder) if entry.startswith("."))


# Locations and names


def test_home_is_wordlstm_home_first(monkeypatch, tmp_path):
    monkeypatch.setenv("WORDLSTM_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert store.home() == tmp_path / "h"


def test_home_falls_back_to_xdg_then_local_share(monkeypatch, tmp_path):
    monkeypatch.delenv("WORDLSTM_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    assert store.home() == tmp_path / "x" / "wordlstm"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert store.home() == tmp_path / ".local" / "share" / "wordlstm"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert store.home() == tmp_path / ".local" / "share" / "wordlstm"


@pytest.mark.parametrize("name", ["default", "ptb.small-2", "A_1", "x" * 100, "v1.0"])
def test_resolve_names_stay_in_the_store(home, name):
    assert store.resolve(name) == home / name


def test_resolve_paths(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert store.resolve("../x") == tmp_path.parent / "x"
    assert store.resolve("a/b") == tmp_path / "a" / "b"
    assert store.resolve("/abs/m") == Path("/abs/m")
    assert store.resolve(".") == tmp_path
    assert store.resolve("..") == tmp_path.parent
    assert store.resolve("~/m") == tmp_path / "me" / "m"
    assert store.resolve("sub/") == tmp_path / "sub"


@pytest.mark.parametrize(
    "name", ["my model", "", "-x", ".hidden", "_x", "x" * 101, "x\n", "a:b", "caf\u00e9", "a*"]
)
def test_resolve_rejects_bad_names(home, name):
    with pytest.raises(BadInput, match="invalid model name"):
        store.resolve(name)


# Saving and loading


def test_round_trip(home):
    path = store.resolve("m")
    store.save(path, **model(7))
    config, tokenizer, weights = store.load(path)
    assert config == {"format_version": store.FORMAT_VERSION, "counter": 7, "hidden": 2}
    assert json.loads(tokenizer) == {"counter": 7}
    expected = model(7)["weights"]
    assert sorted(weights) == sorted(expected)  # dotted PyTorch names survive the file
    for key, array in expected.items():
        assert weights[key].dtype == np.float32
        np.testing.assert_array_equal(weights[key], array)
    assert (path / "training.json").read_bytes() == b"7"
    assert hidden_entries(home) == []


def test_save_stores_float32_and_creates_parents(tmp_path):
    path = tmp_path / "deep" / "er" / "m"
    store.save(path, config={}, tokenizer_json="{}", weights={"w": np.ones(3, np.float64)})
    assert store.load(path)[2]["w"].dtype == np.float32


def test_overwrite_replaces_the_whole_model(home):
    path = store.resolve("m")
    store.save(path, **model(1))
    second = model(2, size=10)
    second["extra"] = {"training.npz": b"resume"}
    store.save(path, **second)
    config, _, weights = store.load(path)
    assert config["counter"] == 2
    assert weights["rnn.weight_ih_l0"].shape == (10,)
    assert sorted(os.listdir(path)) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "training.npz",
    ]
    assert hidden_entries(home) == []


def test_save_refuses_non_model_folder_and_keeps_it(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(BadInput, match="not a wordlstm model"):
        store.save(folder, **model())
    assert os.listdir(folder) == ["cat.jpg"]
    assert hidden_entries(tmp_path) == []


def test_save_refuses_a_foreign_config_json_and_a_file(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"name": "not ours"}')
    with pytest.raises(BadInput):
        store.save(folder, **model())
    assert os.listdir(folder) == ["config.json"]
    file = tmp_path / "file"
    file.write_text("data")
    with pytest.raises(BadInput):
        store.save(file, **model())
    assert file.read_text() == "data"


def test_save_into_an_empty_folder(tmp_path):
    (tmp_path / "m").mkdir()
    store.save(tmp_path / "m", **model(3))
    assert store.load(tmp_path / "m")[0]["counter"] == 3


def test_save_refuses_non_finite_weights_and_keeps_previous(home):
    path = store.resolve("m")
    store.save(path, **model(1))
    bad = model(2)
    bad["weights"]["decoder.bias"][0] = np.nan
    with pytest.raises(RunFailure, match="NaN"):
        store.save(path, **bad)
    assert store.load(path)[0]["counter"] == 1


def test_save_rejects_extra_names_that_clash_or_escape(tmp_path):
    for name in ["model.safetensors", "weights.npz", "../x", ".hidden", "a/b"]:
        with pytest.raises(ValueError):
            store.save(tmp_path / "m", **{**model(), "extra": {name: b""}})
    assert os.listdir(tmp_path) == []


# Loading what is not a good model


def write_npz(path: Path, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def as_legacy(path: Path) -> Path:
    """The model folder `path` turned into 0.1's format: weights.npz, no model.safetensors."""
    write_npz(path / "weights.npz", **load_file(path / WEIGHTS))
    (path / WEIGHTS).unlink()
    return path / "weights.npz"


def write_npy(path: Path) -> None:
    with open(as_legacy(path), "wb") as f:
        np.save(f, np.ones(3, np.float32))


def truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def write_safetensors(path: Path, **arrays) -> None:
    (path / WEIGHTS).write_bytes(save(arrays))


WEIGHTS = "model.safetensors"
BAD_MODELS = {
    "bad json": (lambda p: (p / "config.json").write_text("{not json"), "config.json"),
    "json not an object": (lambda p: (p / "config.json").write_text("[1]"), "config.json"),
    "deep json": (lambda p: (p / "config.json").write_text("[" * 100_000), "config.json"),
    "not utf-8": (lambda p: (p / "config.json").write_bytes(b"\xff\xfe{"), "config.json"),
    "no version": (lambda p: (p / "config.json").write_text("{}"), "format_version"),
    "bool version": (
        lambda p: (p / "config.json").write_text('{"format_version": true}'),
        "format_version",
    ),
    "newer version": (lambda p: (p / "config.json").write_text('{"format_version": 99}'), "newer"),
    "no tokenizer": (lambda p: (p / "tokenizer.json").unlink(), "tokenizer.json"),
    "no weights": (lambda p: (p / WEIGHTS).unlink(), WEIGHTS),
    "truncated weights": (lambda p: truncate(p / WEIGHTS), WEIGHTS),
    "empty weights": (lambda p: (p / WEIGHTS).write_bytes(b""), WEIGHTS),
    "raw pickle": (lambda p: (p / WEIGHTS).write_bytes(b"\x80\x04\x95\x05\x00\x00"), WEIGHTS),
    "float64": (lambda p: write_safetensors(p, w=np.ones(2)), "float32"),
    "int32": (lambda p: write_safetensors(p, w=np.ones(2, np.int32)), "float32"),
    "nan": (lambda p: write_safetensors(p, w=np.array([np.nan], np.float32)), "NaN"),
    "0.1: truncated weights": (lambda p: truncate(as_legacy(p)), "weights.npz"),
    "0.1: npy not npz": (write_npy, "weights.npz"),
    "0.1: raw pickle": (
        lambda p: as_legacy(p).write_bytes(b"\x80\x04\x95\x05\x00\x00"),
        "weights.npz",
    ),
    "0.1: float64": (lambda p: write_npz(as_legacy(p), w=np.ones(2)), "float32"),
    "0.1: nan": (lambda p: write_npz(as_legacy(p), w=np.array([np.nan], np.float32)), "NaN"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_load_rejects_bad_models_with_one_line(tmp_path, case):
    path = tmp_path / "m"
    store.save(path, **model())
    damage, mention = BAD_MODELS[case]
    damage(path)
    with pytest.raises(BadInput, match=mention) as caught:
        store.load(path)
    assert "\n" not in str(caught.value)


def test_load_missing_and_non_model_folders(home, tmp_path):
    with pytest.raises(BadInput, match="no model named 'nope'"):
        store.load(store.resolve("nope"))
    with pytest.raises(BadInput, match="no model folder at"):
        store.load(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadInput, match="not a model folder"):
        store.load(tmp_path / "plain")


def test_load_accepts_big_endian_float32_of_0_1(tmp_path):
    path = tmp_path / "m"
    store.save(path, **model())
    write_npz(as_legacy(path), w=np.arange(3, dtype=">f4"))
    weights = store.load(path)[2]
    assert weights["w"].dtype == np.float32
    np.testing.assert_array_equal(weights["w"], [0, 1, 2])


class TouchOnUnpickle:
    """An object whose unpickling creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_load_never_unpickles_a_0_1_folder(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "m"
    store.save(path, **model())
    payload = np.array([TouchOnUnpickle(marker)], dtype=object)
    write_npz(as_legacy(path), w=np.ones(2, np.float32), payload=payload)
    # The payload works: a careless np.load runs it.
    with np.load(path / "weights.npz", allow_pickle=True) as data:
        data["payload"][0].close()
    assert marker.exists()
    marker.unlink()
    with pytest.raises(BadInput, match="weights.npz"):
        store.load(path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "m"
    store.save(path, **model(5))
    return (path / WEIGHTS).read_bytes()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_weights_load_or_raise_bad_input(tmp_path, good_weights, data):
    path = tmp_path / "m"
    if not path.exists():
        store.save(path, **model(5))
    damaged = bytearray(good_weights)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    (path / WEIGHTS).write_bytes(bytes(damaged[:cut]))
    try:
        weights = store.load(path)[2]
    except BadInput as e:
        assert "\n" not in str(e)
    else:
        assert all(array.dtype == np.float32 for array in weights.values())


# Recovery after a kill


def test_recovery_puts_old_back_when_target_is_missing(home):
    path = store.resolve("m")
    store.save(path, **model(4))
    os.rename(path, home / ".m.old")  # killed between the two renames
    (home / ".m.new-999999999").mkdir()  # the new folder of a dead process
    assert store.load(path)[0]["counter"] == 4
    assert hidden_entries(home) == []


def test_recovery_deletes_old_when_both_exist(home):
    path = store.resolve("m")
    store.save(path, **model(1))
    store.save(home / "keep", **model(2))
    os.rename(home / "keep", home / ".m.old")  # killed before deleting .old
    assert store.load(path)[0]["counter"] == 1
    assert hidden_entries(home) == []


def test_recovery_keeps_folders_of_live_processes_and_other_names(home):
    path = store.resolve("m")
    store.save(path, **model(1))
    live = home / f".m.new-{os.getpid()}"
    live.mkdir()
    store.save(home / "tmp", **model(9))
    os.rename(home / "tmp", home / ".m.b.old")  # belongs to the model "m.b", which is missing
    store.load(path)
    assert hidden_entries(home) == [".m.b.old", f".m.new-{os.getpid()}"]
    assert store.load(store.resolve("m.b"))[0]["counter"] == 9


def models() -> list[tuple[str, dict]]:
    """(name, config) of each loadable model in the store, by name."""
    return [(e.name, e.config) for e in store.survey() if e.problem is None]


def test_list_models_recovers_and_skips_junk(home):
    store.save(store.resolve("zeta"), **model(1))
    store.save(store.resolve("alpha"), **model(2))
    store.save(home / "gone", **model(3))
    os.rename(home / "gone", home / ".gone.old")
    (home / "empty").mkdir()
    (home / "broken").mkdir()
    (home / "broken" / "config.json").write_text("{oops")
    (home / "foreign").mkdir()
    (home / "foreign" / "config.json").write_text('{"a": 1}')
    (home / "notes.txt").write_text("hello")
    (home / ".hidden").mkdir()
    (home / "bad name").mkdir()
    (home / "bad name" / "config.json").write_text('{"format_version": 1}')
    listed = models()
    assert [name for name, _ in listed] == ["alpha", "gone", "zeta"]
    assert [config["counter"] for _, config in listed] == [2, 3, 1]


def test_list_models_without_a_store(home):
    assert models() == []


def test_remove(home):
    path = store.resolve("m")
    store.save(path, **model())
    store.remove(path)
    assert not path.exists()
    assert models() == []
    assert hidden_entries(home) == []
    with pytest.raises(BadInput, match="no model named"):
        store.remove(path)


def test_remove_refuses_a_model_whose_writer_lock_is_held(home):
    path = store.resolve("m")
    store.save(path, **model(1))
    with store.writer_lock(path):
        with pytest.raises(RunFailure, match=f"cannot remove .*being trained .pid {os.getpid()}"):
            store.remove(path)
        assert store.load(path)[0]["counter"] == 1
    store.remove(path)
    assert os.listdir(home) == []


def test_remove_refuses_non_model_folders(tmp_path):
    for name, config in [("plain", None), ("foreign", '{"a": 1}')]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "data.txt").write_text("keep me")
        if config:
            (folder / "config.json").write_text(config)
        with pytest.raises(BadInput, match="not a wordlstm model"):
            store.remove(folder)
        assert (folder / "data.txt").read_text() == "keep me"


def test_remove_a_symlink_removes_only_the_link(tmp_path):
    store.save(tmp_path / "real", **model(1))
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert store.load(tmp_path / "link")[0]["counter"] == 1
    store.remove(tmp_path / "link")
    assert not (tmp_path / "link").exists()
    assert store.load(tmp_path / "real")[0]["counter"] == 1


# Kills and concurrent readers


def saver_model(counter: int) -> dict:
    """Keyword arguments for store.save; the saver subprocess runs this function's source."""
    size = 50_000 * (1 + counter % 8)  # growing weights: saves take a few ms
    return {
        "config": {"counter": counter},
        "tokenizer_json": json.dumps({"counter": counter}),
        "weights": {
            "rnn.weight_ih_l0": np.full(size, counter, np.float32),
            "encoder.weight": np.full((4, 4), counter, np.float32),
        },
        "extra": {"training.json": str(counter).encode()},
    }


SAVER = f"""
import json, sys
from pathlib import Path
import numpy as np
from wordlstm import store
{inspect.getsource(saver_model)}
path, counter = Path(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
while True:
    counter += 1
    store.save(path, **saver_model(counter))
"""

# Dies just before the STEP-th file system step (fsync, rename, rmtree) of one save.
DIES_AT_STEP = f"""
import os, shutil, signal, sys
from pathlib import Path
import json
import numpy as np
from wordlstm import store
{inspect.getsource(saver_model)}
steps = 0
def dying(function):
    def step(*args, **kwargs):
        global steps
        steps += 1
        if steps == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return step
os.fsync, os.rename, shutil.rmtree = dying(os.fsync), dying(os.rename), dying(shutil.rmtree)
store.save(Path(sys.argv[1]), **saver_model(1))
"""


@contextlib.contextmanager
def saver_running(path: Path, counter: int) -> Iterator[None]:
    """Run SAVER from `counter` on; SIGKILL it on leaving."""
    with subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path), str(counter)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env=cli_env(),
    ) as saver:
        try:
            assert read_line(saver.stdout) == b"ready\n"
            yield
        finally:
            saver.send_signal(signal.SIGKILL)


def check_consistent(path: Path, *, files: bool = True) -> int:
    """Load the model and check that its parts come from the same save.

    With `files`, also the files read after `load` returns, which a concurrent save may replace.
    """
    config, tokenizer, weights = store.load(path)
    counter = config["counter"]
    assert weights["rnn.weight_ih_l0"].shape == (50_000 * (1 + counter % 8),)
    assert (weights["rnn.weight_ih_l0"] == counter).all()
    assert (weights["encoder.weight"] == counter).all()
    if files:
        assert json.loads(tokenizer) == {"counter": counter}
        assert (path / "training.json").read_text() == str(counter)
    return counter


def test_sigkill_at_any_moment_leaves_a_complete_model(tmp_path):
    path = tmp_path / "m"
    store.save(path, **saver_model(0))
    counter, interrupted = 0, 0
    rng = random.Random(1)
    for _ in range(10):
        with saver_running(path, counter):
            time.sleep(rng.uniform(0.005, 0.08))
        interrupted += bool(hidden_entries(tmp_path))
        previous, counter = counter, check_consistent(path)
        assert counter >= previous
        assert hidden_entries(tmp_path) == []
    assert counter > 0  # saves completed between the kills
    assert interrupted > 0  # some kills hit a save in the middle


def test_sigkill_before_each_step_of_a_save(tmp_path):
    path = tmp_path / "m"
    seen = set()
    for step in range(1, 30):
        store.save(path, **saver_model(0))
        run = subprocess.run(
            [sys.executable, "-c", DIES_AT_STEP, str(path), str(step)], cwd=REPO, timeout=60
        )
        seen.add(check_consistent(path))
        assert hidden_entries(tmp_path) == []
        if run.returncode == 0:
            break
        assert run.returncode == -signal.SIGKILL
    assert step > 8  # the save had that many steps, each one interrupted once
    assert seen == {0, 1}


def test_loads_during_saves_see_complete_models(tmp_path):
    path = tmp_path / "m"
    store.save(path, **saver_model(0))
    seen = set()
    with saver_running(path, 0):
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            seen.add(check_consistent(path, files=False))
    assert len(seen) > 3  # the loads overlapped many saves
