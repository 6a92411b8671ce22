"""`models show` draws the learning curve from config.json's history, in the terminal and
as a PNG that wordlstm writes itself."""

import json
import struct
import zlib

import pytest
from conftest import assert_one_error_line, run, tiny_job

from wordlstm import render_curve
from wordlstm.api import LearningCurve
from wordlstm.trainjob import train_files

HISTORY = [
    {"epoch": 1, "train_ppl": 100.0, "valid_ppl": 50.0, "lr": 20.0},
    {"epoch": 2, "train_ppl": 40.0, "valid_ppl": 30.0, "lr": 20.0},
    {"epoch": 3, "train_ppl": 25.0, "valid_ppl": 31.0, "lr": 5.0},
    {"epoch": 4, "train_ppl": 22.0, "valid_ppl": 28.0, "lr": 5.0, "averaged": True},
]


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an unfiltered 8-bit RGB PNG (what wordlstm writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type = header[:4]
    assert (depth, colour_type) == (8, 2)
    raw = zlib.decompress(idat)
    rows = [raw[y * (3 * width + 1) : (y + 1) * (3 * width + 1)] for y in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, [r[1:] for r in rows]


def test_the_curve_marks_lr_changes_and_the_start_of_averaging():
    c = LearningCurve.of(HISTORY)
    assert c.lr_changes == [(3, 5.0)] and c.averaging_from == 4
    lines = render_curve.text(c, width=31, height=10).plain.splitlines()
    grid = [line.split("│", 1)[1] for line in lines[:10]]
    assert all(row[20] in "┊●•" for row in grid) and all(row[30] in "┆●•" for row in grid)
    first, last = [[row[x] for row in grid] for x in (0, 30)]
    # log scale, up is higher: train 100 above valid 50 at epoch 1, train 22 below valid 28
    assert first.index("•") < first.index("●") and last.index("•") > last.index("●")
    assert first.index("•") <= 1 and last.index("•") >= 8  # the extremes at the edges
    assert "lr: 5 from epoch 3" in lines[-1] and "averaging from epoch 4" in lines[-1]


def test_the_png_draws_the_valid_line_where_its_points_are():
    c = LearningCurve.of(HISTORY)
    width, height, rows = read_png(render_curve.picture(c, 320, 200))
    assert (width, height) == (320, 200)
    low, high = render_curve.log_range(c)
    # the valid point of epoch 1 sits at the left axis's x + 0, at y for log10(50)
    import math

    y = round(20 + (high - math.log10(50.0)) / (high - low) * (200 - 30 - 20))
    x = 70 + 2  # beside the axis line, inside the point's dot
    assert tuple(rows[y][3 * x : 3 * x + 3]) == render_curve.COLOURS["valid"]
    colours = {tuple(r[k : k + 3]) for r in rows for k in range(0, len(r), 3)}
    assert {render_curve.COLOURS[n] for n in ("train", "lr", "average")} <= colours


def test_training_records_which_epochs_were_averaged(corpus, tmp_path):
    train_files(tiny_job([corpus], tmp_path / "m", epochs=12))
    history = json.loads((tmp_path / "m" / "config.json").read_text())["history"]
    averaged = [e["averaged"] for e in history]
    assert True in averaged  # plateaus came: averaging began
    first = averaged.index(True)
    assert first > 0 and all(averaged[first:])


def test_models_show_draws_the_curve_and_writes_the_png(trained, tmp_path):
    proc = run("models", "show", "default", "--png", str(tmp_path / "c.png"), home=trained)
    assert proc.returncode == 0, proc.err
    assert "learning curve" in proc.out and "● valid ppl" in proc.out
    assert read_png((tmp_path / "c.png").read_bytes())[:2] == (640, 400)


@pytest.mark.parametrize("where", ["missing-dir/c.png", "."])
def test_an_unwritable_png_is_one_error_line(trained, tmp_path, where):
    proc = run("models", "show", "default", "--png", str(tmp_path / where), home=trained)
    assert_one_error_line(proc, 2, "cannot write")
