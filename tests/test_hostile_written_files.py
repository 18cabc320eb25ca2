"""Writing files next to planted links, over inputs, and through failures: whole or nothing, never through a link."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optarena import files
from optarena.files import OutputError, atomic_file, atomic_path, check_output, write_atomically

FIXTURE = Path(__file__).parent / "fixtures" / "store_0_1_0.sqlite"


def _listing(folder: Path) -> dict[str, object]:
    """Every entry of ``folder``: a link's target, or a file's hash."""
    found: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.is_symlink():
            found[path.name] = ("link", os.readlink(path))
        elif path.is_file():
            found[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[path.name] = "folder"
    return found


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file elsewhere that a planted link points to."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "precious"
    target.write_bytes(b"do not overwrite")
    return target


def test_a_link_planted_at_the_temporary_name_is_never_followed(tmp_path, victim, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "report.html"
    (out_dir / "report.html.partial").symlink_to(victim)  # the name this project used to use
    names = itertools.chain(["planted"], (f"{n:016x}" for n in itertools.count(1)))
    monkeypatch.setattr(files.secrets, "token_hex", lambda _: next(names))
    (out_dir / ".report.html.planted.tmp").symlink_to(victim)  # and the next name it will try

    write_atomically(out, "<html>new</html>")
    assert out.read_text() == "<html>new</html>" and not out.is_symlink()
    assert victim.read_bytes() == b"do not overwrite"
    assert (out_dir / ".report.html.planted.tmp").is_symlink()  # left alone, not followed
    assert sorted(p.name for p in out_dir.iterdir()) == [
        ".report.html.planted.tmp",
        "report.html",
        "report.html.partial",
    ]


def test_an_output_that_is_a_link_is_replaced_not_written_through(tmp_path, victim):
    out = tmp_path / "report.html"
    out.symlink_to(victim)
    write_atomically(out, "new")
    assert not out.is_symlink() and out.read_text() == "new"
    assert victim.read_bytes() == b"do not overwrite"


@pytest.mark.parametrize("how", ["same name", "symbolic link", "hard link", "through a linked folder"])
def test_an_output_that_is_an_input_is_refused_and_nothing_changes(tmp_path, how):
    store = tmp_path / "a.sqlite"
    store.write_bytes(FIXTURE.read_bytes())
    out = {
        "same name": store,
        "symbolic link": tmp_path / "out.html",
        "hard link": tmp_path / "out.html",
        "through a linked folder": tmp_path / "view" / "a.sqlite",
    }[how]
    if how == "symbolic link":
        out.symlink_to(store)
    elif how == "hard link":
        os.link(store, out)
    elif how == "through a linked folder":
        (tmp_path / "view").symlink_to(tmp_path)
    before = _listing(tmp_path)
    with pytest.raises(OutputError, match="is the input"):
        write_atomically(out, "<html>", inputs=[store])
    assert _listing(tmp_path) == before


def test_the_report_command_refuses_to_write_over_its_store(tmp_path, capsys):
    from optarena.cli import main

    store = tmp_path / "a.sqlite"
    store.write_bytes(FIXTURE.read_bytes())
    (tmp_path / "link.html").symlink_to(store)
    before = _listing(tmp_path)
    for out in (store, tmp_path / "link.html", tmp_path / "a.sqlite-wal"):
        assert main(["report", "--db", str(store), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "is the input" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    after = _listing(tmp_path)
    assert b"<html" not in (tmp_path / "a.sqlite-wal").read_bytes()  # SQLite's own log, opened to read
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == before


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "results.csv"
    out.write_text("old\n")
    neighbour = tmp_path / "notes.txt"
    neighbour.write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(RuntimeError, match="half way"), atomic_file(out, text=True) as handle:
        handle.write("new, partial")
        raise RuntimeError("half way")
    assert _listing(tmp_path) == before

    with pytest.raises(RuntimeError, match="half way"), atomic_path(tmp_path / "movie.gif") as path:
        path.write_bytes(b"GIF89a partial")
        raise RuntimeError("half way")
    assert _listing(tmp_path) == before


def test_a_library_that_needs_a_file_name_writes_through_a_private_folder(tmp_path):
    out = tmp_path / "movie.gif"
    with atomic_path(out) as path:
        assert path.name == "movie.gif" and path.parent != tmp_path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        path.write_bytes(b"GIF89a")
    assert out.read_bytes() == b"GIF89a" and sorted(p.name for p in tmp_path.iterdir()) == ["movie.gif"]


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    out = tmp_path / "page.md"
    out.write_text("old")
    out.chmod(0o640)
    write_atomically(out, "new")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text() == "new"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "missing" / "x.html", "does not exist"),
        (lambda tmp: tmp / "..", "names a folder"),
    ],
)
def test_outputs_that_cannot_be_files(tmp_path, make, message):
    before = _listing(tmp_path)
    with pytest.raises(OutputError, match=message):
        check_output(make(tmp_path))
    assert _listing(tmp_path) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=300)
)
def test_any_file_name_is_written_whole_or_refused_and_no_temporary_is_left(tmp_path, name):
    folder = tmp_path / "names"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        write_atomically(folder / name, b"content")
    except (OutputError, OSError):
        assert not any(p.name.endswith(".tmp") for p in folder.iterdir())
    else:
        assert (folder / name).read_bytes() == b"content"
        assert [p.name for p in folder.iterdir()] == [Path(name).name] or name in (".", "..")


def test_the_report_command_never_follows_a_planted_partial_link(tmp_path, victim, capsys):
    from optarena.cli import main

    store = tmp_path / "a.sqlite"
    store.write_bytes(FIXTURE.read_bytes())
    (tmp_path / "report.html.partial").symlink_to(victim)
    assert main(["report", "--db", str(store), "--out", str(tmp_path / "report.html")]) == 0
    assert victim.read_bytes() == b"do not overwrite"
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_a_landscape_is_never_written_over_its_data(tmp_path):
    from data_files import write_mnist

    from optarena.landscape.command import run_landscape

    write_mnist(tmp_path / "mnist", sizes=(("train", 130), ("test", 10)))
    data = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    before = _listing(tmp_path / "mnist")
    with pytest.raises(OutputError, match="is the input"):
        run_landscape("mnist-mlp", ["sgd"], grid=3, out=data, data_dir=str(tmp_path))
    assert _listing(tmp_path / "mnist") == before
