"""The state's files a cron run with work reads whole, asked of the kernel at its start
(``readahead``): each whole, nothing that is not a regular file waited on."""

import ctypes
import ctypes.util
import mmap
import os
import threading
import time
from pathlib import Path

import pytest
from test_state import _DAY1, _DAY2, _write

from dedup import Config, band_store, readahead, row_image, run
from dedup.state import State


def _resident(path: Path) -> float:
    """The share of ``path``'s pages in the page cache (``mincore`` on a read-only mapping of it)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    int_ = ctypes.c_int
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, int_, int_, int_, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            pytest.skip(f"mmap: {os.strerror(ctypes.get_errno())}")
        try:
            flags = (ctypes.c_ubyte * pages)()
            if libc.mincore(address, size, flags) != 0:
                pytest.skip(f"mincore: {os.strerror(ctypes.get_errno())}")
            return sum(f & 1 for f in flags) / pages
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


def test_a_file_is_asked_for_whole_not_one_readahead_window(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as fh:  # over the 8 MB a single WILLNEED call reads on Linux
        fh.write(os.urandom(24 << 20))
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(big, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _resident(big) > 0.5:
        pytest.skip("this file system keeps the pages (tmpfs, or an overlay)")
    assert readahead.ask([str(big)]) == 1
    deadline = time.monotonic() + 10
    while _resident(big) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _resident(big) == 1.0


def test_only_regular_files_are_asked_for_and_none_is_waited_on(tmp_path: Path) -> None:
    regular = tmp_path / "rows.columns"
    regular.write_bytes(b"x" * 10_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened without O_NONBLOCK, this would wait for a writer forever
    link = tmp_path / "link"
    link.symlink_to(regular)
    paths = [str(p) for p in (fifo, link, tmp_path / "missing", tmp_path, regular)]
    asked: list[int] = []
    thread = threading.Thread(target=lambda: asked.append(readahead.ask(paths)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "readahead waited on a FIFO"
    assert asked == [1]  # the regular file; not the FIFO, the link, the missing path, the directory


def test_a_cron_run_asks_for_the_image_the_bands_and_the_manifest(tmp_path: Path) -> None:
    corpus, out, home = tmp_path / "corpus", tmp_path / "out", tmp_path / "state"
    _write(corpus, _DAY1)
    config = Config(jobs=1, state=str(home))
    run([corpus], out, config)
    _write(corpus, _DAY2)
    run([corpus], out, config)
    store = State(home, config.stamp())
    try:
        image = row_image.named_path(store)
        files = readahead.cron_files(home, image, out)
    finally:
        store.close()
    assert image is not None and image.parent == home and band_store.files(home)
    # In the order the run reads them: the rows' image, the band segments, OUT's manifest.
    assert files == [str(image), *band_store.files(home), str(out / "manifest.jsonl")]
    assert all(Path(f).is_file() for f in files)
    thread = readahead.start(files)
    thread.join(10)
    assert not thread.is_alive() and readahead.ask(files) == len(files)
    assert readahead.ask(files, budget=1) == 1  # what is over the budget is not asked for


def test_a_run_with_work_asks_once_and_a_rerun_with_none_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, out, home = tmp_path / "corpus", tmp_path / "out", tmp_path / "state"
    _write(corpus, _DAY1)
    config = Config(jobs=1, state=str(home))
    run([corpus], out, config)
    asked: list[list[str]] = []
    real = readahead.start
    monkeypatch.setattr(readahead, "start", lambda paths: asked.append(list(paths)) or real(paths))
    _write(corpus, _DAY2)  # new files beside the first INPUT's own: its entries move
    run([corpus], out, config)
    assert len(asked) == 1 and str(out / "manifest.jsonl") in asked[0]
    assert any(p.endswith(".columns") for p in asked[0])
    run([corpus], out, config)  # nothing changed: told before any stage, nothing asked for
    assert len(asked) == 1


@pytest.mark.parametrize("name", ["/etc/passwd", "rows-a\0b.columns", "../rows-x.columns"])
def test_a_name_stored_for_the_image_is_not_followed_out_of_the_state(tmp_path: Path, name: str) -> None:
    corpus, out, home = tmp_path / "corpus", tmp_path / "out", tmp_path / "state"
    _write(corpus, _DAY1)
    config = Config(jobs=1, state=str(home))
    run([corpus], out, config)
    store = State(home, config.stamp())
    try:
        store.db.execute("UPDATE columns SET name = ?", (name,))
        assert row_image.named_path(store) is None
        files = readahead.cron_files(home, row_image.named_path(store), out)
        assert all(home in Path(p).parents or Path(p).parent == out for p in files)
    finally:
        store.close()
    _write(corpus, _DAY2)
    run([corpus], out, config)  # the image not trusted: the rows read from the database, no traceback
    assert (out / "manifest.jsonl").stat().st_size > 0
