"""What scrapes really hold: HTML pages in site templates, other encodings, scripts without spaces."""

import codecs
import os
import subprocess
import sys
from pathlib import Path
from random import Random

import pytest
from conftest import COUNCIL, MUSEUM, STORM, STORM_OTHER, by_path
from hypothesis import given, settings
from hypothesis import strategies as st

from corpora.scrape import page
from corpora.sources import Article
from dedup import Config, extract, normalize, run
from dedup.readers.decode import Undecodable, decode_bytes
from dedup.signatures import document_shingles

ONE_JOB = Config(jobs=1)
ZH = (
    "据新华社北京十二月三十日电西藏自治区政府副主席今天在北京接受记者采访时介绍说，西藏部分地区发生特大雪灾后，"
    "党中央、国务院十分关心西藏的灾情和救灾工作，指示全力做好救灾工作。自治区各级政府正在全力组织抗灾，"
    "力争降低特大雪灾造成的损失。受厄尔尼诺现象的影响，西藏的唐古拉山、喜马拉雅山一线九月以来提前开始降雪，"
    "降雪持续不断。十二月份，受南支槽云系和北部冷空气的共同影响，那曲、阿里、日喀则、拉萨、山南以及昌都等"
    "六地市都出现了不同的降雪过程，其中一部分地区已经成重灾。"
)

KO = "서울시는 오늘 새로운 도시 계획을 발표했다. 시민들은 공원과 도서관이 늘어나기를 기대하고 있다. " * 5


def _article(key: str, text: str) -> Article:
    title, *paragraphs = text.split("\n\n")
    return Article(key, title[:60], tuple(paragraphs or [title]), "", ())


def test_pages_of_one_site_are_not_one_cluster(write_tree, tmp_path: Path) -> None:
    """The template is most of each page; only the main text is matched and scored."""
    rng = Random(1)
    texts = {"council": COUNCIL, "storm": STORM, "schools": STORM_OTHER, "museum": MUSEUM}
    arts = {k: _article(k, v) for k, v in texts.items()}
    files: dict[str, str | bytes] = {}
    for site in range(3):
        for name, art in arts.items():
            others = [a for a in arts.values() if a is not art]
            files[f"site{site}/{name}.html"] = page(site, art, others, rng)
    files["plain/storm.txt"] = STORM
    root = write_tree(files)
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    for name in texts:  # the same article on three sites (and as text) is one cluster ...
        assert len({m[f"site{s}/{name}.html"]["cluster"] for s in range(3)}) == 1
    # ... and different articles of one site are not
    assert len({m[f"site0/{name}.html"]["cluster"] for name in texts}) == len(texts)
    assert m["plain/storm.txt"]["cluster"] == m["site0/storm.html"]["cluster"]
    # markup is how a page is written, not damage; in a .txt it still is
    assert all(m[f"site{s}/storm.html"]["signals"]["markup"] == 0 for s in range(3))


def test_markup_inside_a_text_file_is_still_damage(write_tree, tmp_path: Path) -> None:
    residue = "\n".join(f"<p>{p}</p>" for p in STORM.split("\n\n"))
    root = write_tree({"clean.txt": STORM, "residue.txt": residue})
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["residue.txt"]["duplicate_of"] == "clean.txt" and m["residue.txt"]["penalties"]["markup"] > 0


def test_main_text_drops_the_template() -> None:
    art = _article("storm", STORM)
    text = extract.main_text(page(0, art, [_article("m", MUSEUM)], Random(0)))
    assert text.splitlines()[0] == art.title.strip()
    assert art.paragraphs[-1] in text
    for template in ("cookies", "dataLayer", "Most read", "All rights reserved", MUSEUM[:30]):
        assert template not in text


@pytest.mark.parametrize(
    ("data", "kwargs", "text", "encoding"),
    [
        (codecs.BOM_UTF8 + "café".encode(), {}, "café", "utf-8"),
        ("café ok".encode("utf-16"), {}, "café ok", "utf-16-le"),
        (codecs.BOM_UTF16_BE + "café".encode("utf-16-be"), {}, "café", "utf-16-be"),
        ("caf\u00e9 \u2019".encode("cp1252"), {"declared": "windows-1252"}, "caf\u00e9 \u2019", "cp1252"),
        (
            "caf\u00e9".encode("cp1252"),
            {"declared": "utf-8"},
            None,
            None,
        ),  # a wrong declaration is not believed
        (
            b'<meta charset="iso-8859-1"><p>caf\xe9</p>',
            {"html": True},
            '<meta charset="iso-8859-1"><p>café</p>',
            "cp1252",
        ),
        ("日本語の記事です。".encode("shift_jis") * 20, {}, "日本語の記事です。" * 20, "shift_jis"),
        (ZH.encode("gb18030"), {}, ZH, "gb18030"),
        (KO.encode("euc-kr"), {}, KO, "euc_kr"),  # resiliparse's detector takes it for UTF-8
    ],
)
def test_encodings(data: bytes, kwargs: dict, text: str | None, encoding: str | None) -> None:
    got = decode_bytes(data, **kwargs)
    if text is None:  # only the first characters matter: the declared UTF-8 was skipped
        assert got.encoding != "utf-8"
        return
    assert got.text == text
    assert codecs.lookup(got.encoding).name == codecs.lookup(encoding).name


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"\x89PNG\r\n\x1a\n\x00\x00", "binary"), (bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 20, "undecodable")],
)
def test_not_text(data: bytes, status: str) -> None:
    with pytest.raises(Undecodable) as err:
        decode_bytes(data)
    assert err.value.status == status


def test_copies_in_other_encodings_match_their_utf8_twin(write_tree, tmp_path: Path) -> None:
    text = COUNCIL.replace("'", "\u2019") + "\nCaf\u00e9 society na\u00efvely re-\u00e9lected the mayor."
    root = write_tree(
        {
            "utf8.txt": text,
            "cp1252.txt": text.encode("cp1252"),
            "utf16.txt": text.encode("utf-16"),
            "page.html": f'<html><head><meta charset="windows-1252"><title>x</title></head><body><article>'
            f"{''.join(f'<p>{p}</p>' for p in text.split(chr(10) * 2))}</article></body></html>".encode(
                "cp1252"
            ),
        }
    )
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert len({r["cluster"] for r in m.values()}) == 1
    assert {p: r.get("encoding") for p, r in m.items()} == {
        "utf8.txt": None,
        "cp1252.txt": "cp1252",
        "utf16.txt": "utf-16-le",
        "page.html": "cp1252",
    }
    kept = next(p for p, r in m.items() if r["canonical"])  # the kept copy is its input's own bytes
    assert (tmp_path / "out" / "canonical" / kept).read_bytes() == (root / kept).read_bytes()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(at=st.integers(min_value=0, max_value=len(ZH) - 1), new=st.sampled_from("日曰已己巳人入大太天夫"))
def test_a_slipped_character_changes_few_shingles(at: int, new: str) -> None:
    """Characters, not clauses: one slipped character changes at most k + 1 shingles on each side."""
    k = 5
    slipped = ZH[:at] + new + ZH[at + 1 :]
    a = set(document_shingles(normalize.tokens(ZH), k).tolist())
    b = set(document_shingles(normalize.tokens(slipped), k).tolist())
    assert len(a - b) <= k + 1 and len(b - a) <= k + 1


def test_chinese_copies_cluster_and_the_clean_one_is_kept(write_tree, tmp_path: Path) -> None:
    slipped = ZH.replace("天", "夫").replace("日", "曰")
    teaser = ZH[: len(ZH) // 2]
    other = (
        "上海市今天举行新闻发布会，介绍了今年城市建设和交通发展的主要计划，包括新建三条地铁线路和改造老旧小区。"
        * 3
    )
    root = write_tree({"a.txt": ZH, "b-slipped.txt": slipped, "c-teaser.txt": teaser, "d-other.txt": other})
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["a.txt"]["canonical"]
    assert m["b-slipped.txt"]["duplicate_of"] == m["c-teaser.txt"]["duplicate_of"] == "a.txt"
    assert m["d-other.txt"]["canonical"] and m["d-other.txt"]["cluster"] != m["a.txt"]["cluster"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_device_does_not_hang_the_run(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "ok.txt").write_text(MUSEUM)
    os.mkfifo(root / "pipe.txt")
    os.symlink("/dev/zero", root / "zero.txt")  # followed: its size says 0 and it never ends
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dedup",
            "run",
            str(root),
            "--out",
            str(out),
            "-q",
            "-j",
            "1",
            "--follow-links",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    m = by_path(out)
    assert m["ok.txt"]["status"] == "ok"
    for name in ("pipe.txt", "zero.txt"):
        assert m[name]["status"] == "unreadable" and "not a regular file" in m[name]["error"]


def test_links_out_of_the_input_are_not_followed_unless_asked(tmp_path: Path) -> None:
    root, private = tmp_path / "in", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    private.mkdir()
    (private / "secret.txt").write_text(COUNCIL)
    os.chmod(private / "secret.txt", 0o600)
    (root / "sub" / "museum.txt").write_text(MUSEUM)
    os.symlink(private / "secret.txt", root / "leak.txt")
    os.symlink(root / "sub" / "museum.txt", root / "inside.txt")  # a link within the input is read
    os.symlink(root / "loop.txt", root / "loop.txt")  # a link to itself: unreadable, not outside
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["leak.txt"]["status"] == "outside" and "--follow-links" in m["leak.txt"]["error"]
    assert m["inside.txt"]["status"] == "ok"
    assert m["loop.txt"]["status"] == "unreadable" and "symbolic links" in m["loop.txt"]["error"]
    assert not (tmp_path / "out" / "canonical" / "leak.txt").exists()
    run([root], tmp_path / "out2", Config(jobs=1, follow_links=True))
    copy = tmp_path / "out2" / "canonical" / "leak.txt"
    assert copy.read_text() == COUNCIL
    assert copy.stat().st_mode & 0o077 == 0  # never wider than its source


def test_file_names_that_are_not_utf8_are_recorded_escaped(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as fh:
        fh.write(MUSEUM.encode())
    (root / "copy.txt").write_text(MUSEUM)
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    escaped = "caf\\xe9.txt"
    assert m[escaped]["status"] == "ok" and m[escaped]["cluster"] == m["copy.txt"]["cluster"]
    kept = next(p for p, r in m.items() if r["canonical"])
    assert (tmp_path / "out" / "canonical" / kept).read_text() == MUSEUM
    from dedup.explain import show  # the escaped name is found again under its real one

    members = {r["path"]: r for r in show(tmp_path / "out", path=escaped)["members"]}
    assert members[escaped]["text_from"] == "input" and members[escaped]["text"] == MUSEUM


def test_site_furniture_in_any_language_counts_against_a_copy(write_tree, tmp_path: Path) -> None:
    """Lines that many unrelated pages share are furniture, even where no English phrase matches."""
    furniture = ["首页 | 新闻 | 国际 | 财经", "广告", "分享到：微信 微博", "点击排行", "扫码关注我们的公众号"]
    stories = [
        "北京市今天召开会议，讨论今年的城市建设计划，包括新建公园和改造老旧小区。",
        "上海港的集装箱吞吐量去年再创新高，港口管理部门表示将继续扩建码头设施。",
        "广州的春节花市吸引了大量市民和游客，各种鲜花和年货摆满了街道两旁。",
        "深圳一家科技公司发布了新型电池，研究人员说它的充电速度比现有产品快一倍。",
        "南京博物院新展厅正式开放，展出了数百件明清时期的瓷器和书画作品。",
        "武汉的长江大桥迎来通车纪念日，许多老人回忆起当年建桥时的情景。",
        "成都大熊猫繁育基地宣布，今年共有六只熊猫幼崽出生，全部健康成长。",
        "西安城墙上举行了马拉松比赛，来自二十多个国家的选手参加了这项活动。",
    ]
    files: dict[str, str | bytes] = {
        f"site/{k}.txt": "\n".join([furniture[0], story * 3, *furniture[1:]])
        for k, story in enumerate(stories)
    }
    files["a-clean.txt"] = ZH
    files["b-site.txt"] = "\n".join([furniture[0], ZH, *furniture[1:]])
    root = write_tree(files)
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["a-clean.txt"]["canonical"] and m["b-site.txt"]["duplicate_of"] == "a-clean.txt"
    assert m["b-site.txt"]["penalties"]["template"] > 0 and m["a-clean.txt"]["penalties"]["template"] == 0
    assert len({m[f"site/{k}.txt"]["cluster"] for k in range(len(stories))}) == len(stories)


def test_short_pages_that_share_only_a_notice_are_not_duplicates(write_tree, tmp_path: Path) -> None:
    """Lines held by more documents than a text and all its candidates are left out of the comparison.

    The notice is half of each short page, and the pages are candidates of each
    other; it is also on long articles of the same site that are not their candidates.
    """
    notice = [
        "Note: this error code is no longer emitted by the compiler and is kept here for reference only.",
        "Press S or / to search in the book, press ? to show this help, press Esc to hide this help.",
    ]
    topics = [
        "More than one main function was found in the crate being compiled today.",
        "A binary can only have one entry point declared with the start attribute.",
        "An if let pattern attempts to match a pattern that can never fail to match.",
        "A while loop pattern is irrefutable so a plain loop should be used instead.",
        "The trait method has the wrong number of type parameters in this implementation.",
        "A lifetime parameter was declared twice in the same generic parameter list.",
    ]
    files: dict[str, str | bytes] = {
        f"page{k}.txt": "\n".join([notice[0], t, notice[1]]) for k, t in enumerate(topics)
    }
    files["copy0.txt"] = files["page0.txt"]
    rng = Random(3)
    for k, text in enumerate([COUNCIL, STORM, STORM_OTHER, MUSEUM] * 3):
        words = text.split()
        rng.shuffle(words)  # long, unrelated articles carrying the same notice
        files[f"long{k}.txt"] = "\n".join([notice[0], " ".join(words), notice[1]])
    root = write_tree(files)
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m["copy0.txt"]["cluster"] == m["page0.txt"]["cluster"]
    assert len({m[f"page{k}.txt"]["cluster"] for k in range(len(topics))}) == len(topics)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_containers_that_are_fifos_devices_or_links_out_are_not_opened(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "ok.txt").write_text(MUSEUM)
    os.mkfifo(root / "pipe.jsonl")
    os.symlink("/dev/zero", root / "zero.jsonl")
    (elsewhere / "private.jsonl").write_text('{"id": "p", "text": "a private line of text"}\n')
    os.symlink(elsewhere / "private.jsonl", root / "leak.jsonl")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "dedup", "run", str(root), "--out", str(out), "-q", "-j", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    m = by_path(out)
    assert m["pipe.jsonl"]["status"] == "unreadable" and "not a regular file" in m["pipe.jsonl"]["error"]
    assert m["zero.jsonl"]["status"] == "outside" and m["leak.jsonl"]["status"] == "outside"


def test_a_report_does_not_lock_the_next_cron_run_out(write_tree, tmp_path: Path) -> None:
    from dedup.report import write_report

    root = write_tree({"a.txt": STORM, "b.txt": MUSEUM})
    out, state = tmp_path / "out", str(tmp_path / "state")
    run([root], out, Config(jobs=1, state=state))
    write_report(out)
    assert (out / "report.html").exists()
    (root / "c.txt").write_text(COUNCIL)
    result = run([root], out, Config(jobs=1, state=state))
    assert result.counts["documents"] == 3
    assert not (out / "report.html").exists()  # it described the run before


def test_skipped_files_are_not_changed_on_every_cron_run(write_tree, tmp_path: Path) -> None:
    root = write_tree({"a.txt": STORM})
    os.symlink(tmp_path / "nowhere.txt", root / "dangling.txt")
    (tmp_path / "private.txt").write_text(MUSEUM)
    os.symlink(tmp_path / "private.txt", root / "leak.txt")
    out, state = tmp_path / "out", str(tmp_path / "state")
    run([root], out, Config(jobs=1, state=state))
    again = run([root], out, Config(jobs=1, state=state))
    assert again.counts["changed"] == 0 and again.counts["new"] == 0


@pytest.mark.parametrize("mark", ["&shy;", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_invisible_characters_inside_words_do_not_hide_a_copy(write_tree, tmp_path: Path, mark: str) -> None:
    """Hyphenation plugins put a soft hyphen in every long word; as a non-word character it cut each
    in two, and such a copy shared ~10% of the clean copy's shingles (two clusters, both kept)."""
    import re

    marked = re.sub(r"\w{7,}", lambda m: m.group(0)[:3] + mark + m.group(0)[3:], STORM)
    name = "marked.html" if mark.startswith("&") else "marked.txt"
    text = f"<html><body><p>{marked}</p></body></html>" if name.endswith(".html") else marked
    root = write_tree({"clean.txt": STORM, name: text, "other.txt": COUNCIL})
    run([root], tmp_path / "out", ONE_JOB)
    m = by_path(tmp_path / "out")
    assert m[name]["cluster"] == m["clean.txt"]["cluster"] != m["other.txt"]["cluster"]
    assert m[name]["similarity"] is None or m[name]["similarity"]["jaccard"] > 0.95
    assert normalize.comparison_text(marked.replace("&shy;", "\u00ad")) == normalize.comparison_text(STORM)
