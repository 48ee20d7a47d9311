"""Hostile input, third round (a red-team pass): names that are not UTF-8 or look escaped, charsets
that are not charsets, pages nested too deep, repeated WARC ids, a directory turned into a file."""

import hashlib
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from conftest import COUNCIL, MUSEUM, STORM, by_path, warc_record

from dedup import extract
from dedup.cli import cli
from dedup.explain import show
from dedup.readers.decode import decode_bytes


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["run", *map(str, args), "-j1", "-q"])


def _write(directory: Path, name: bytes, text: str) -> None:
    """A file under a name given as bytes (not necessarily UTF-8)."""
    with open(os.path.join(os.fsencode(directory), name), "wb") as fh:
        fh.write(text.encode())


def _inputs(tmp_path: Path, files: dict[bytes, str]) -> Path:
    """A directory ``in`` holding ``files`` (names as bytes)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, text in files.items():
        _write(inputs, name, text)
    return inputs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_cron_run_stores_and_finds_again_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, {b"caf\xe9.txt": MUSEUM, b"storm.txt": STORM})
    assert _invoke(inputs, "--out", tmp_path / "batch").exit_code == 0
    for _ in range(2):  # the first run stores the name, the second finds it unchanged
        done = _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state")
        assert done.exit_code == 0, done.output
    cron = (tmp_path / "out" / "manifest.jsonl").read_bytes()
    assert cron == (tmp_path / "batch" / "manifest.jsonl").read_bytes()
    assert by_path(tmp_path / "out")["caf\\xe9.txt"]["status"] == "ok"
    # Edited: the stored name leads to the file, read again.
    _write(inputs, b"caf\xe9.txt", COUNCIL)
    assert _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state").exit_code == 0
    assert by_path(tmp_path / "out")["caf\\xe9.txt"]["sha256"] == _sha(COUNCIL.encode())


def test_an_input_directory_whose_name_is_not_utf8(tmp_path: Path) -> None:
    inputs = os.path.join(os.fsencode(tmp_path), b"d\xe9")
    os.mkdir(inputs)
    _write(Path(os.fsdecode(inputs)), b"a.txt", MUSEUM)
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text(STORM)
    given = os.fsdecode(inputs)
    assert _invoke(given, other, "--out", tmp_path / "batch").exit_code == 0
    assert set(by_path(tmp_path / "batch")) == {"d\\xe9/a.txt", "other/b.txt"}
    for _ in range(2):
        done = _invoke(given, "--out", tmp_path / "out", "--state", tmp_path / "state")
        assert done.exit_code == 0, done.output
    members = show(tmp_path / "batch", path="d\\xe9/a.txt")["members"]
    assert members[0]["text"] == MUSEUM  # found again from the summary's escaped INPUT


def test_an_escaped_name_and_the_same_text_typed_in_a_name_stay_apart(tmp_path: Path) -> None:
    """``caf\\xe9.txt`` typed with a backslash, and a name holding the byte 0xE9: two paths, two copies."""
    inputs = _inputs(tmp_path, {b"caf\xe9.txt": MUSEUM, b"caf\\xe9.txt": STORM})
    assert _invoke(inputs, "--out", tmp_path / "out").exit_code == 0
    records = by_path(tmp_path / "out")
    assert set(records) == {"caf\\xe9.txt", "caf\\x5cxe9.txt"}
    assert records["caf\\xe9.txt"]["sha256"] == _sha(MUSEUM.encode())
    assert records["caf\\x5cxe9.txt"]["sha256"] == _sha(STORM.encode())
    for path, record in records.items():
        copy = (tmp_path / "out" / "canonical" / path).read_bytes()
        assert _sha(copy) == record["sha256"]  # each copy is its own input, byte for byte
        assert show(tmp_path / "out", path=path)["members"][0]["text_from"] == "input"


@pytest.mark.parametrize("charset", ["punycode", "undefined", "utf-16", "utf-32", "cp037", "idna"])
def test_a_declared_charset_that_is_no_charset_is_ignored(charset: str, tmp_path: Path) -> None:
    head = f'<html><head><meta charset="{charset}"></head>'
    page = f"{head}<body><article><p>{STORM}</p></article></body></html>"
    assert decode_bytes(page.encode(), html=True).text == page
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "page.html").write_text(page)
    done = _invoke(tmp_path / "in", "--out", tmp_path / "out")
    assert done.exit_code == 0, done.output
    assert by_path(tmp_path / "out")["page.html"]["status"] == "ok"


def _nested(depth: int) -> str:
    template = "<nav>Home | World | Sport | Weather | Subscribe</nav>" * 5
    body = "<article>" + "".join(f"<p>{p}</p>" for p in COUNCIL.split("\n\n")) + "</article>"
    return f"<html><body>{template}{'<div>' * depth}{body}</body></html>"


def test_a_page_nested_too_deep_gets_its_visible_text_at_once() -> None:
    """The main-content extractor slows with the square of the depth (200,000 levels: hours)."""
    deep = extract.main_text(_nested(200_000))
    assert "city council" in deep and "Subscribe" in deep  # all visible text, the template with it
    shallow = extract.main_text(_nested(extract.MAX_DEPTH // 2))
    assert "city council" in shallow and "Subscribe" not in shallow  # the main content alone


def test_repeated_warc_record_ids_never_give_one_path_twice(tmp_path: Path) -> None:
    # Record 3 repeats "a": keyed "a#R3"; record 1 already took "a#R3".
    records = [("a#R3", MUSEUM), ("a", STORM), ("a", COUNCIL)]
    pages = [(i, f"<html><body><article><p>{t}</p></article></body></html>".encode()) for i, t in records]
    uris = [f"http://example.com/{n}" for n in range(len(pages))]
    raw = b"".join(warc_record("response", u, p, record_id=i) for u, (i, p) in zip(uris, pages, strict=True))
    (tmp_path / "crawl.warc").write_bytes(raw)
    assert _invoke(tmp_path / "crawl.warc", "--out", tmp_path / "out").exit_code == 0
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    records_by_path = by_path(tmp_path / "out")
    assert len(records_by_path) == len(lines) == 3
    assert len({r["cluster"] for r in records_by_path.values()}) == 3  # three texts, three clusters


def test_a_directory_replaced_by_a_file_of_its_name_in_cron_mode(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub.txt").mkdir(parents=True)
    (inputs / "sub.txt" / "a.txt").write_text(MUSEUM)
    (inputs / "b.txt").write_text(STORM)
    assert _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state").exit_code == 0
    (inputs / "sub.txt" / "a.txt").unlink()
    (inputs / "sub.txt").rmdir()
    (inputs / "sub.txt").write_text(COUNCIL)
    done = _invoke(inputs, "--out", tmp_path / "out", "--state", tmp_path / "state")
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "canonical" / "sub.txt").read_text() == COUNCIL
    assert by_path(tmp_path / "out")["sub.txt/a.txt"]["status"] == "gone"


def test_empty_standard_input_is_said_so(tmp_path: Path) -> None:
    done = CliRunner().invoke(cli, ["run", "-", "--out", str(tmp_path / "out"), "-q"], input=b"")
    assert done.exit_code != 0 and "standard input was empty" in done.output
    (tmp_path / "empty.jsonl").write_bytes(b"")
    done = _invoke(tmp_path / "empty.jsonl", "--out", tmp_path / "out2")
    assert done.exit_code != 0 and "the INPUTs were empty" in done.output and "--glob" not in done.output


def _jsonl(directory: Path, name: bytes, rows: list[tuple[str, str]]) -> None:
    lines = b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in rows)
    os.makedirs(directory, exist_ok=True)
    _write(directory, name, lines.decode())


@pytest.mark.parametrize("folder", [b"d\xe9", b"sub\\xe9"])
def test_containers_in_a_folder_whose_name_is_escaped(folder: bytes, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    where = Path(os.fsdecode(os.path.join(os.fsencode(inputs), folder)))
    _jsonl(where, b"x.jsonl", [("a", MUSEUM), ("b", STORM)])
    _jsonl(where, b"z.jsonl", [("a", MUSEUM + " Tickets are free.")])
    (inputs / "keep.txt").write_text(COUNCIL)
    shown = "sub\\x5cxe9" if folder == b"sub\\xe9" else "d\\xe9"  # as the manifest has it
    cron = ["--out", tmp_path / "out", "--state", tmp_path / "state"]
    for _ in range(2):
        assert _invoke(inputs, *cron).exit_code == 0
    assert (tmp_path / "out" / "canonical" / shown / "x.jsonl").is_file()
    # explain finds the records again through the escaped folder, and says why they match
    done = CliRunner().invoke(
        cli, ["explain", f"{shown}/x.jsonl/a", f"{shown}/z.jsonl/a", "--in", str(tmp_path / "out"), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert "unavailable" not in done.output and "near-duplicate" in done.output
    # The folder goes: so do its outputs in canonical/, and the folder made for them.
    for child in where.iterdir():
        child.unlink()
    where.rmdir()
    assert _invoke(inputs, *cron).exit_code == 0
    assert not (tmp_path / "out" / "canonical" / shown).exists()


def test_explain_and_report_of_a_vanished_file_whose_folder_is_not_utf8(tmp_path: Path) -> None:
    inputs = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"in\xe9")))
    inputs.mkdir()
    (inputs / "a.txt").write_text(STORM + " Updates follow.")
    (inputs / "b.txt").write_text(STORM)
    assert _invoke(inputs, "--out", tmp_path / "out").exit_code == 0
    records = by_path(tmp_path / "out")
    dropped = next(p for p, r in records.items() if not r["canonical"])
    (inputs / dropped).unlink()  # its text is gone: the message names the file, escaped
    done = CliRunner().invoke(cli, ["explain", "a.txt", "b.txt", "--in", str(tmp_path / "out"), "--json"])
    assert done.exit_code == 0 and "unavailable" in done.output and "in\\\\xe9" in done.output
    done = CliRunner().invoke(cli, ["report", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_folder_of_containers_replaced_by_a_file_of_its_name_in_cron_mode(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _jsonl(inputs / "sub.txt", b"x.jsonl", [("a", MUSEUM)])
    (inputs / "keep.txt").write_text(STORM)
    cron = ["--out", tmp_path / "out", "--state", tmp_path / "state"]
    assert _invoke(inputs, *cron).exit_code == 0
    (inputs / "sub.txt" / "x.jsonl").unlink()
    (inputs / "sub.txt").rmdir()
    (inputs / "sub.txt").write_text(COUNCIL)
    done = _invoke(inputs, *cron)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "canonical" / "sub.txt").read_text() == COUNCIL


def test_a_damaged_token_table_in_a_state_is_an_error_that_says_rebuild(tmp_path: Path) -> None:
    import sqlite3

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.txt").write_text(MUSEUM)
    cron = ["--out", tmp_path / "out", "--state", tmp_path / "state"]
    assert _invoke(inputs, *cron).exit_code == 0
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite")
    (blob,) = db.execute("SELECT value FROM blobs WHERE key = 'token_frequency'").fetchone()
    damaged = blob[:20] + bytes(40) + blob[60:]
    db.execute("UPDATE blobs SET value = ? WHERE key = 'token_frequency'", (damaged,))
    db.commit()
    db.close()
    (inputs / "b.txt").write_text(STORM)  # work to do: the table is read
    done = _invoke(inputs, *cron)
    assert done.exit_code == 1 and "token frequencies are unreadable" in done.output
    assert "--rebuild" in done.output and "Traceback" not in done.output


def test_a_name_with_a_backslash_that_reads_as_no_escape_is_kept_as_it_is(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path, {b"q\\x41.txt": MUSEUM, b"a\\b.txt": STORM, b"tail\\": COUNCIL})
    assert _invoke(inputs, "--out", tmp_path / "out", "--glob", "*").exit_code == 0
    assert set(by_path(tmp_path / "out")) == {"q\\x41.txt", "a\\b.txt", "tail\\"}
