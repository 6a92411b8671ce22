"""Reading text: training files fail loudly and clearly, scoring input never fails."""

import io
import os
import sys
import threading

import pytest
from conftest import training_lines

from wordlstm import text
from wordlstm.errors import BadInput
from wordlstm.text import PIECE_BYTES, LineReader, LongLine, ready_batches


def lines_of(stream, piece_bytes: int = PIECE_BYTES) -> LineReader:
    """The lines of one untrusted byte stream, as the commands read their input."""
    return LineReader([stream], piece_bytes)


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_training_lines_split_on_newline_only(tmp_path):
    path = write(tmp_path, "a.txt", "a\x0bb\u2028c\x1cd\r\nsecond\n\nlast".encode())
    assert training_lines([path]) == ["a\x0bb\u2028c\x1cd", "second", "", "last"]


def test_final_newline_starts_no_line_and_files_concatenate(tmp_path):
    one = write(tmp_path, "one.txt", b"x y\n")
    two = write(tmp_path, "two.txt", "\ufeffz\n\n".encode())  # a BOM is not text
    assert training_lines([one, two]) == ["x y", "z", ""]


def test_dash_reads_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin\nline 2\n")))
    assert training_lines(["-"]) == ["from stdin", "line 2"]


def test_missing_file(tmp_path):
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(BadInput, match="missing.txt: no such file"):
        training_lines([missing])


def test_directory(tmp_path):
    with pytest.raises(BadInput, match="directory"):
        training_lines([str(tmp_path)])


def test_binary_file(tmp_path):
    path = write(tmp_path, "data.bin", b"looks like text\n\x00\x01\x02")
    with pytest.raises(BadInput, match="data.bin.*binary"):
        training_lines([path])


def test_not_utf8_names_file_and_offset(tmp_path):
    path = write(tmp_path, "latin1.txt", "caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(BadInput, match=r"latin1.txt: not UTF-8.*offset 3"):
        training_lines([path])


@pytest.mark.parametrize("data", [b"", b"  \n\t\n\r\n", "\ufeff\n".encode()])
def test_empty_or_blank_file(tmp_path, data):
    path = write(tmp_path, "blank.txt", data)
    with pytest.raises(BadInput, match="blank.txt: is empty"):
        training_lines([path])


def test_empty_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(BadInput, match="stdin"):
        training_lines(["-"])


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path, "secret.txt", b"words\n")
    if os.geteuid() != 0:  # root reads anything: there, simulate the refusal
        os.chmod(path, 0)
    else:

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(text, "open", refuse, raising=False)
    with pytest.raises(BadInput, match="secret.txt: permission denied"):
        training_lines([path])


def test_input_lines_never_fail_and_keep_one_item_per_newline():
    data = (
        b"nul\x00byte\n"
        b"crlf\r\n"
        b"bad\xff\xfeutf8\n"
        + "sep\u2028and\x0bvt\x1c\n".encode()
        + b"\n"
        + b"   \n"
        + b"two\r\r\n"
        + b"no newline at end"
    )
    assert list(lines_of(io.BytesIO(data))) == [
        "nul\x00byte",
        "crlf",
        "bad\ufffd\ufffdutf8",
        "sep\u2028and\x0bvt\x1c",
        "",
        "   ",
        "two\r",
        "no newline at end",
    ]


def test_input_lines_handle_a_huge_line_and_empty_input():
    huge = b"w " * 1_000_000
    lines = list(lines_of(io.BytesIO(huge + b"\nend\n"), piece_bytes=len(huge)))
    assert lines == [huge.decode(), "end"]
    assert list(lines_of(io.BytesIO(b""))) == []


def test_a_line_longer_than_a_piece_comes_in_pieces_cut_after_a_space_or_tab():
    data = "\ufeffab cd\tef xxxxxxxxxx\r\nab\u20ac\u20ac\u20ac\nend".encode()
    reader = lines_of(io.BytesIO(data), piece_bytes=4)
    first = next(reader)
    assert isinstance(first, LongLine)
    assert list(first.pieces()) == [
        ("ab ", False),
        ("cd\t", False),
        ("ef ", False),
        ("xxxx", False),  # a run without space or tab: cut at the piece size
        ("xxxx", False),
        ("xx", True),  # "\r\n" ends the line
    ]
    assert first.size == first.start_size == len("ab cd\tef xxxxxxxxxx\r")
    assert first.start == "ab cd\tef xxxxxxxxxx"
    second = next(reader)  # cut at character boundaries, never inside one
    assert [text for text, _ in second.pieces()] == ["ab", "\u20ac", "\u20ac", "\u20ac"]
    assert list(reader) == ["end"]


def test_a_long_line_left_unread_is_skipped():
    reader = lines_of(io.BytesIO(b"one two three four\nnext\n"), piece_bytes=5)
    assert isinstance(next(reader), LongLine)
    assert list(reader) == ["next"]


def test_input_lines_stream_before_input_ends():
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        writer.write(b"first line\nsecond")
        writer.flush()  # the writer stays open: more input may still come
        lines = lines_of(reader)
        got = []
        worker = threading.Thread(target=lambda: got.append(next(lines)), daemon=True)
        worker.start()
        worker.join(timeout=5)
        assert got == ["first line"]
        writer.write(b" half\n")
        writer.close()
        assert list(lines) == ["second half"]


def test_ready_batches_keeps_order_bounds_size_and_raises_in_place():
    batches = list(ready_batches(iter(range(200)), 16))
    assert [x for b in batches for x in b] == list(range(200))
    assert all(1 <= len(b) <= 16 for b in batches)

    def failing():
        yield from range(5)
        raise BadInput("broken input")

    seen = []
    with pytest.raises(BadInput, match="broken input"):
        for batch in ready_batches(failing(), 4):
            seen.extend(batch)
    assert seen == list(range(5))


def test_ready_batches_end_a_batch_at_a_long_line():
    reader = lines_of(io.BytesIO(b"a\nb\nc d e f g h\ni\n"), piece_bytes=4)
    shapes = []
    for batch in ready_batches(reader, 16):
        shapes.append([x if isinstance(x, str) else "long" for x in batch])
        for x in batch:
            if isinstance(x, LongLine):
                list(x.pieces())
    assert shapes == [["a", "b", "long"], ["i"]]


def test_a_reader_tells_whether_a_line_has_arrived_without_waiting():
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb", buffering=0) as writer:
        lines = lines_of(reader)
        writer.write(b"first\nsec")
        assert lines.ready() and next(lines) == "first"
        assert not lines.ready()  # half a line: taking it would wait
        assert not lines.ready()
        writer.write(b"ond\n")
        assert lines.ready() and next(lines) == "second"
        writer.close()
        assert lines.ready() and list(lines) == []
