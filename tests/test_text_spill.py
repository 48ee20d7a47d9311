"""Pass 1's comparison texts on disk: pass 2 compares what it would have made from the documents."""

import gzip
import json
import os
from pathlib import Path
from random import Random

import numpy as np
import pytest
from conftest import COUNCIL, MUSEUM, STORM, STORM_OTHER, garble

from corpora.scrape import page
from corpora.sources import Article
from dedup import Config, normalize, pass1, pass2, readers, run, text_spill
from dedup.frequency import TokenFrequency

ZH = (
    "据新华社北京十二月三十日电西藏自治区政府副主席今天在北京接受记者采访时介绍说\uff0c西藏部分地区发生特大雪灾后。"
    * 4
)


def _mixed(root: Path) -> Path:
    """HTML pages in site templates, plain texts with mojibake and markup, Chinese, a gzipped JSONL shard."""
    rng = Random(3)
    texts = {"council": COUNCIL, "storm": STORM, "schools": STORM_OTHER, "museum": MUSEUM}
    arts = {k: Article(k, v.split("\n\n")[0][:60], tuple(v.split("\n\n")), "", ()) for k, v in texts.items()}
    files: dict[str, bytes] = {}
    for site in range(2):
        for name, art in arts.items():
            others = [a for a in arts.values() if a is not art]
            files[f"site{site}/{name}.html"] = page(site, art, others, rng).encode()
    files["plain/council.txt"] = garble(COUNCIL, "The mayor").replace("'", "â€™").encode()
    files["plain/storm.txt"] = ("**" + STORM + "** [more](http://x)").encode()
    files["zh/a.txt"], files["zh/b.txt"] = ZH.encode(), ZH[:150].encode("gb18030")
    lines = [json.dumps({"id": k, "text": garble(v, "Officials")}) for k, v in texts.items()]
    files["shard.jsonl.gz"] = gzip.compress(("\n".join(lines) + "\n").encode())
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _loads(corpus: pass2.Corpus) -> list[tuple[bytes, ...]]:
    loaded = [pass2.load(corpus, n, 7) for n in range(len(corpus.sizes))]
    return [tuple(b"" if a is None else np.asarray(a).tobytes() for a in one) for one in loaded]


@pytest.mark.parametrize("chunk", [text_spill.CHUNK, 100])  # 100: written a few texts at a time
def test_pass2_compares_every_text_as_made_from_its_document(tmp_path: Path, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(text_spill, "CHUNK", chunk)
    root = _mixed(tmp_path / "in")
    config = Config(jobs=1)
    spill = tmp_path / "texts"
    spill.mkdir()
    frequency = TokenFrequency()
    docs, feats, _ = pass1.read_all(readers.discover([str(root)]), config, frequency, texts=spill)
    corpus = pass2.Corpus.of(config, docs, feats, frequency)
    assert len(docs) == 16 and len(corpus.sizes) >= 14  # (every document ok)
    assert corpus.texts.held(np.arange(len(corpus.sizes))).all()
    with readers.spooled(docs, range(len(docs)), tmp_path):  # the shard's records, read again
        written = _loads(corpus)
        corpus.texts = text_spill.Texts(None, None)  # none: each made again from its document
        assert _loads(corpus) == written


def test_a_text_not_written_or_gone_is_made_from_its_document(tmp_path: Path, monkeypatch) -> None:
    assert text_spill.Writer(tmp_path / "missing").put(["a text", "another"]) == [None, None]
    with monkeypatch.context() as patched:  # a file system with less room than the outputs need
        patched.setattr(text_spill, "RESERVE", os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize)
        writer = text_spill.Writer(tmp_path)
        assert writer.put(["a text"]) == [None] and writer.put(["more"]) == [None]
    spill = tmp_path / "texts"
    spill.mkdir()
    texts = text_spill.Texts(spill, None)
    for where in text_spill.Writer(spill).put(["one", "two ünïcode \udcff"]):
        texts.add(where)
    texts.seal()
    assert [texts.get(0), texts.get(1)] == ["one", "two ünïcode \udcff"]
    texts.discard()
    assert os.listdir(spill) == [] and texts.get(0) is None


def test_texts_whose_file_is_gone_or_short_are_read_from_their_documents(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
    texts = text_spill.Texts(one, None)
    for where in text_spill.Writer(one).put(["a", "bb"]):
        texts.add(where)
    texts.seal()
    name = os.listdir(one)[0]
    os.truncate(one / name, 2)  # "a" whole, "bb" cut short
    texts.verify()
    assert texts.held(np.array([0, 1])).tolist() == [True, False] and texts.get(1) is None
    os.unlink(one / name)
    texts.verify()
    assert not texts.held(np.array([0, 1])).any()


def test_a_run_whose_texts_vanish_reads_the_documents_and_writes_the_same(tmp_path: Path) -> None:
    """The shard's records then come from the spool, not from the shard's start each."""
    root = _mixed(tmp_path / "in")
    run([root], tmp_path / "kept", Config(jobs=2))

    def remove(point: str) -> None:
        if point == "pass1":
            for f in (tmp_path / "gone").glob(".texts.*.tmp/*"):
                f.unlink()

    spooled: list[int] = []
    real = readers.make_spool

    def spool(docs, wanted, out):  # type: ignore[no-untyped-def]
        wanted = list(wanted)
        spooled.append(len(wanted))
        return real(docs, wanted, out)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(readers, "make_spool", spool)
        run([root], tmp_path / "gone", Config(jobs=2), checkpoint=remove)
    assert spooled and spooled[0] >= 4  # the shard's grouped records, at least
    assert (tmp_path / "kept" / "manifest.jsonl").read_bytes() == (
        tmp_path / "gone" / "manifest.jsonl"
    ).read_bytes()


def test_without_room_for_the_texts_a_run_writes_the_same(tmp_path: Path, monkeypatch) -> None:
    root = _mixed(tmp_path / "in")
    run([root], tmp_path / "with", Config(jobs=2))
    monkeypatch.setattr(text_spill, "RESERVE", 1 << 62)
    written: list[int] = []

    def look(point: str) -> None:
        if point == "pass1":
            written.extend(f.stat().st_size for f in (tmp_path / "without").glob(".texts.*.tmp/*"))

    run([root], tmp_path / "without", Config(jobs=2), checkpoint=look)
    assert written and not any(written)  # the workers' files, left empty
    assert (tmp_path / "with" / "manifest.jsonl").read_bytes() == (
        tmp_path / "without" / "manifest.jsonl"
    ).read_bytes()


def test_a_run_leaves_no_texts_and_drops_them_before_the_write_stage(tmp_path: Path) -> None:
    root = _mixed(tmp_path / "in")
    out = tmp_path / "out"
    (out / ".texts.killed.tmp").mkdir(parents=True)  # a killed run's
    (out / ".texts.killed.tmp" / "123-abcd").write_text("left")
    seen: dict[str, list[str]] = {}

    def look(point: str) -> None:
        if point in ("pass1", "committed"):
            seen[point] = [name for d in out.glob(".texts.*.tmp") for name in os.listdir(d)]

    run([root], out, Config(jobs=2, force=True), checkpoint=look)
    assert seen["pass1"]  # written while pass 1 ran ...
    assert seen["committed"] == []  # ... gone once pass 2 was done
    assert not list(out.glob(".texts.*"))


def test_a_batch_of_long_texts_is_written_a_chunk_at_a_time(tmp_path: Path, monkeypatch) -> None:
    """A worker holds a batch's texts until about CHUNK of them are made, not all 128 files' at once."""
    monkeypatch.setattr(text_spill, "CHUNK", 3000)
    puts: list[int] = []
    put = text_spill.Writer.put
    monkeypatch.setattr(
        text_spill.Writer, "put", lambda self, texts: puts.append(sum(map(len, texts))) or put(self, texts)
    )
    root = tmp_path / "in"
    root.mkdir()
    for k in range(8):
        (root / f"{k}.txt").write_text(garble(STORM, f"Officer {k}") * 2)
    config = Config()
    docs = list(readers.iter_documents(readers.discover([str(root)]), config, read=False))
    spill = tmp_path / "texts"
    spill.mkdir()
    results, _ = pass1.Analyser(config, spill)(docs)
    assert len(puts) >= 4 and max(puts) < 3000 + 2 * len(STORM)
    texts = text_spill.Texts(spill, None)
    for _, feat in results:
        texts.add(feat.text_at)
    texts.seal()
    made = [
        normalize.comparison_text(normalize.repair(doc.text or (root / doc.path).read_text()))
        for doc, _ in results
    ]
    assert [texts.get(n) for n in range(len(results))] == made
