"""Damage functions that turn a clean article into the kinds of copies scrapers actually produce.

Every function is pure: it takes the text and a seeded `random.Random` and returns a new string.
Parameters left as None are drawn from the RNG, so that every damaged copy in a corpus has its own
mix (rates, pronouns, phrases, boilerplate strings, cut points) and a scorer cannot be tuned to one
exact artifact. `apply(kind, text, rng, level)` draws parameters for a "light", "normal" or
"heavy" version of a kind.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from corpora.sources import _wordset, split_sentences

KINDS: tuple[str, ...] = (
    "truncation",
    "coref",
    "treebank",
    "drop_hyphen",
    "ocr",
    "boilerplate",
    "joined_paragraphs",
    "markdown",
    "html",
    "mojibake",
)
"""All damage kinds, in the order they are applied when a copy gets several (pipeline order)."""

LEVELS = ("light", "normal", "heavy")

PRONOUNS = ("he", "she", "him", "her", "his", "they", "them", "it")

BOILERPLATE = (
    "Advertisement",
    "ADVERTISEMENT",
    "Subscribe to our newsletter",
    "Sign up for our daily newsletter to get the top stories in your inbox",
    "We use cookies to improve your experience on our site. By continuing to browse you agree to our "
    "use of cookies. Find out more",
    "Accept all cookies",
    "Share this article",
    "Share on Facebook | Share on Twitter | Email | Print",
    "Home | World | Politics",
    "Home > News > World > Europe",
    "Read more: {headline}",
    "Related: {headline}",
    "Follow us on Twitter and Instagram",
    "Skip to main content",
    "Continue reading below",
    "Image copyright Getty Images",
    "Copyright {year} All rights reserved.",
    "Most Read",
    "Comments ({n})",
    "Click here to download our app",
)

HEADLINES = (
    "Markets close higher as investors weigh rate outlook",
    "Five things to know before you travel this summer",
    "Opinion: what the latest poll really tells us",
    "Storm warnings issued for coastal areas",
    "The week in pictures",
    "Watch: highlights from last night's game",
    "How to protect your savings from inflation",
    "Officials respond to questions over new budget plan",
)

_HYPHENATED = re.compile(r"(?<![\w-])[\w']+(?:-[\w']+)+(?![\w-])")
_NAME = re.compile(r"(?<![\w-])(?:[A-Z][a-z]+ ){1,3}[A-Z][a-z]+\b")
_THE_NP = re.compile(r"\b[Tt]he [a-z]{3,}(?: [a-z]{3,})?\b")
_SENT_END = re.compile(r"[.!?][\"\u201d\u2019')]*(?=\s|$)")
_CAP_PHRASE = re.compile(r"(?<![\w-])[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,}){0,2}\b")
_NOT_NAMES = _wordset(
    "The This That These Those There Then They Their And But For From With When Where What Which "
    "While Who Why How After Before Also About Into Over Under Our Your You His Her She Its "
    "Mr Mrs Ms In On At As By An It We He If"
)


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def truncate(
    text: str,
    rng: random.Random,
    *,
    frac: float | None = None,
    boundary: str | None = None,
    ellipsis: str | None = None,
) -> str:
    """Keep the first `frac` of the text, cut at a sentence end (if one is near) or a word boundary."""
    frac = rng.uniform(0.3, 0.7) if frac is None else frac
    boundary = boundary or rng.choice(("sentence", "sentence", "word"))
    if ellipsis is None:
        ellipsis = rng.choice(("", "", "", " ...", "\u2026", " [...]")) if boundary == "word" else ""
    cut = max(1, int(len(text) * frac))
    out = ""
    if boundary == "sentence":
        ends = [m.end() for m in _SENT_END.finditer(text, 0, cut + 1) if m.end() <= cut]
        if ends and ends[-1] >= 0.8 * cut:
            out = text[: ends[-1]]
    if not out:
        space = text.rfind(" ", 0, cut)
        out = text[: space if space > 0 else cut].rstrip(" ,;:-\n") + ellipsis
    return out.rstrip()


def _tb_sentence(s: str, curly: bool, backticks: bool, brackets: bool) -> str:
    """Penn-Treebank tokenisation of one sentence (contractions, punctuation and quotes split off)."""
    if curly:
        s = re.sub(r"(?<=\w)'(?=\w)", "\u2019", s)
    apos = "\u2019" if curly else "'"
    s = re.sub(r"(\w)(n['\u2019]t)\b", r"\1 \2", s)
    s = re.sub(r"(\w)(['\u2019](?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M))\b", r"\1 \2", s)
    s = s.replace("n't", "n" + apos + "t") if curly else s
    if backticks:
        s = re.sub(r'(^|[\s(\[{])["\u201c]', r"\1`` ", s)
        s = re.sub(r'["\u201d\u201c]', " ''", s)
    else:
        s = re.sub(r'(^|[\s(\[{])(["\u201c])', r"\1\2 ", s)
        s = re.sub(r'(\S)(["\u201d])', r"\1 \2", s)
    s = re.sub(r"([,;:!?%])(?=\s|$|[\"'\u201d\u2019`])", r" \1", s)
    s = re.sub(r"\s*--\s*", " -- ", s)
    s = re.sub(r"\.\.\.", " ... ", s)
    s = re.sub(r"(?<!\.)\.((?:\s*(?:''|[\"\u201d\u2019)]))*)\s*$", r" .\1", s)
    s = re.sub(r"\(\s*", "-LRB- " if brackets else "( ", s)
    s = re.sub(r"\s*\)", " -RRB-" if brackets else " )", s)
    s = re.sub(r"\$(?=\d)", "$ ", s)
    return re.sub(r"(?<=\S) {2,}(?=\S)", " ", s).strip()


def treebank(
    text: str,
    rng: random.Random,
    *,
    curly: bool | None = None,
    backticks: bool | None = None,
    brackets: bool | None = None,
    layout: str | None = None,
) -> str:
    """Penn-Treebank tokenised copy (`Trump 's`, `ca n't`, `word ,`, ``` `` ```), as NLP pipelines emit.

    layout: "paragraphs" keeps paragraph breaks, "sentences" puts one sentence per line, "one_line"
    joins everything into a single line.
    """
    curly = rng.random() < 0.4 if curly is None else curly
    backticks = rng.random() < 0.7 if backticks is None else backticks
    brackets = rng.random() < 0.2 if brackets is None else brackets
    layout = layout or rng.choice(("paragraphs", "sentences", "one_line", "one_line"))
    paras = [
        [_tb_sentence(s, curly, backticks, brackets) for s in split_sentences(p)] for p in _paragraphs(text)
    ]
    if layout == "paragraphs":
        return "\n\n".join(" ".join(p) for p in paras)
    if layout == "sentences":
        return "\n".join(s for p in paras for s in p)
    return " ".join(s for p in paras for s in p)


def drop_hyphenated(
    text: str, rng: random.Random, *, rate: float | None = None, gap: int | None = None
) -> str:
    """Drop hyphenated words, leaving the gaps a broken tokeniser leaves (`a "   " campaign`)."""
    rate = rng.uniform(0.6, 1.0) if rate is None else rate
    gap = rng.choice((0, 1, 2, 3)) if gap is None else gap
    matches = list(_HYPHENATED.finditer(text))
    if not matches:
        return text
    chosen = [m for m in matches if rng.random() < rate] or [rng.choice(matches)]
    out, pos = [], 0
    for m in chosen:
        out.append(text[pos : m.start()])
        out.append(" " * gap)
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def antecedent_phrases(text: str) -> tuple[list[str], list[str]]:
    """Candidate antecedents in order of appearance: multi-word names, and "the ..." noun phrases.

    The first paragraph is skipped when there are several (it is usually the title).
    """
    paras = _paragraphs(text)
    body = "\n\n".join(paras[1:]) if len(paras) > 2 else text
    out: list[list[str]] = []
    for rx in (_NAME, _THE_NP):
        seen: dict[str, int] = {}
        for m in rx.finditer(body):
            phrase = m.group(0)
            if phrase.split()[0] in _NOT_NAMES and rx is _NAME:
                continue
            seen.setdefault(phrase, m.start())
        out.append(sorted(seen, key=lambda p: (seen[p], p)))
    return out[0], out[1]


def coref(
    text: str,
    rng: random.Random,
    *,
    rate: float | None = None,
    pronouns: tuple[str, ...] | None = None,
    phrases: tuple[str, ...] | None = None,
    mode: str | None = None,
) -> str:
    """Coreference-substitution garbage: pronouns replaced by (or followed by) an antecedent phrase.

    Mimics pipelines that "resolve" coreference by pasting a mention in place of each pronoun, so the
    same phrase repeats everywhere (`warned him The city attorney detaining anyone`).
    """
    rate = rng.uniform(0.3, 0.95) if rate is None else rate
    if pronouns is None:
        present = [p for p in PRONOUNS if re.search(rf"\b{p}\b", text, re.IGNORECASE)]
        if not present:
            return text
        pronouns = tuple(rng.sample(present, rng.randint(min(2, len(present)), len(present))))
    if phrases is None:
        names, nps = antecedent_phrases(text)
        picked: list[str] = []
        for _ in range(rng.randint(1, 2)):
            pool = names if names and (not nps or rng.random() < 0.7) else nps
            if pool:
                picked.append(rng.choice(pool[: max(3, len(pool) // 3)]))
        if not picked:
            return text
        phrases = tuple(picked)
    mode = mode or rng.choice(("replace", "replace", "insert", "mixed"))
    rx = re.compile(r"\b(" + "|".join(pronouns) + r")\b", re.IGNORECASE)
    hits = list(rx.finditer(text))
    if not hits:
        return text
    chosen = {m.start() for m in hits if rng.random() < rate} or {rng.choice(hits).start()}

    def sub(m: re.Match[str]) -> str:
        if m.start() not in chosen:
            return m.group(0)
        phrase = phrases[0] if len(phrases) == 1 or rng.random() < 0.75 else phrases[1]
        if m.group(0).lower() == "his" or (m.group(0).lower() == "her" and rng.random() < 0.5):
            phrase += rng.choice(("", "'s"))
        how = mode if mode != "mixed" else rng.choice(("replace", "insert"))
        return phrase if how == "replace" else f"{m.group(0)} {phrase}"

    return rx.sub(sub, text)


_OCR_SUBS: tuple[tuple[str, str], ...] = (
    ("rn", "m"),
    ("m", "rn"),
    ("l", "1"),
    ("I", "l"),
    ("O", "0"),
    ("o", "0"),
    ("e", "c"),
    ("c", "e"),
    ("h", "b"),
    ("cl", "d"),
    ("i", "l"),
    ("S", "5"),
    ("B", "8"),
    ("u", "n"),
    ("n", "u"),
)


def ocr(
    text: str,
    rng: random.Random,
    *,
    rate: float | None = None,
    slips: int | None = None,
    ops: tuple[str, ...] | None = None,
) -> str:
    """OCR slips (rn->m, l->1, O->0, e->c, h->b, dropped or doubled letters) at a small rate.

    Give either `slips` (an exact number) or `rate` (slips per letter); length stays roughly the same.
    """
    if ops is None:
        names = [a for a, _ in _OCR_SUBS] + ["drop", "double"]
        ops = tuple(rng.sample(names, rng.randint(4, len(names))))
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if not letters:
        return text
    if slips is None:
        rate = rng.uniform(0.004, 0.02) if rate is None else rate
        slips = max(1, round(len(letters) * rate))
    subs = dict(_OCR_SUBS)
    sites = {op: [m.start() for m in re.finditer(re.escape(op), text)] for op in ops if op in subs}
    usable = [op for op in ops if op not in subs or sites[op]] or ["drop"]
    chars = list(text)
    done: set[int] = set()
    made = tries = 0
    while made < slips and tries < slips * 20:
        tries += 1
        op = rng.choice(usable)
        i = rng.choice(sites[op]) if op in subs else rng.choice(letters)
        span = range(i - 1, i + len(op) + 1) if op in subs else range(i - 1, i + 2)
        if any(k in done for k in span):
            continue
        if op == "drop":
            chars[i] = ""
        elif op == "double":
            chars[i] = chars[i] * 2
        else:
            chars[i] = subs[op]
            for k in range(1, len(op)):
                chars[i + k] = ""
        done.update(range(i, i + max(1, len(op) if op in subs else 1)))
        made += 1
    return "".join(chars)


def boilerplate(
    text: str,
    rng: random.Random,
    *,
    lines: int | None = None,
    where: tuple[str, ...] | None = None,
) -> str:
    """Site boilerplate lines (ads, newsletter, cookie notice, nav, "Read more: ...") around or inside."""
    lines = rng.randint(2, 4) if lines is None else lines
    pool = rng.sample(BOILERPLATE, min(lines, len(BOILERPLATE)))
    picked = [
        s.format(headline=rng.choice(HEADLINES), year=rng.randint(2014, 2019), n=rng.randint(0, 300))
        for s in pool
    ]
    while len(picked) < lines:
        picked.append(rng.choice(picked))
    where = where or tuple(rng.choice(("header", "footer", "mid")) for _ in picked)
    paras = _paragraphs(text)
    single = len(paras) == 1
    if single:
        paras = [" ".join(split_sentences(paras[0]))]
    header: list[str] = []
    footer: list[str] = []
    for line, pos in zip(picked, where, strict=True):
        if pos == "header":
            header.append(line)
        elif pos == "footer":
            footer.append(line)
        elif len(paras) >= 2:
            paras.insert(rng.randint(1, len(paras) - 1), line)
        else:
            sents = split_sentences(paras[0])
            if len(sents) >= 2:
                k = rng.randint(1, len(sents) - 1)
                paras = [" ".join(sents[:k]), line, " ".join(sents[k:])]
            else:
                footer.append(line)
    sep = "\n" if single or rng.random() < 0.5 else "\n\n"
    body = "\n\n".join(paras) if not single else "\n".join(paras)
    parts = ([sep.join(header)] if header else []) + [body] + ([sep.join(footer)] if footer else [])
    return sep.join(parts)


def join_paragraphs(text: str, rng: random.Random) -> str:
    """All paragraphs joined into one line, as many extractors flatten a page."""
    joiner = rng.choice((" ", " ", "  "))
    return joiner.join(p.strip() for p in _paragraphs(text))


def _link_phrases(text: str, rng: random.Random, k: int) -> list[str]:
    found = (m.group(0) for m in _CAP_PHRASE.finditer(text))
    cands = sorted({p for p in found if p.split()[0] not in _NOT_NAMES})
    return rng.sample(cands, min(k, len(cands)))


def _slug(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")


def _wrap_first(text: str, phrase: str, repl: str) -> str:
    return re.sub(r"(?<![\[>\w])" + re.escape(phrase) + r"(?![\w\]<])", lambda _m: repl, text, count=1)


def markdown(text: str, rng: random.Random, *, features: tuple[str, ...] | None = None) -> str:
    """Markdown residue: `[Customs Enforcement](#)` links, `**bold**`, `# title`, `> quote`, images."""
    all_features = ("links", "links", "bold", "heading", "quote", "image", "italic")
    features = features or tuple(sorted(set(rng.sample(all_features, rng.randint(1, 4)))))
    paras = _paragraphs(text)
    if "heading" in features and paras:
        paras[0] = rng.choice(("# ", "## ", "### ")) + paras[0]
    if "quote" in features:
        for i, p in enumerate(paras):
            if i and p[:1] in '"\u201c':
                paras[i] = "> " + p
    if "bold" in features and len(paras) > 1:
        i = 1 if len(paras) > 1 else 0
        sents = split_sentences(paras[i])
        if sents:
            paras[i] = "**" + sents[0] + "**" + paras[i][len(sents[0]) :]
    if "image" in features:
        alt = rng.choice(("", "Photo", "Image: Reuters", "File photo"))
        year, month, name = rng.randint(2015, 2019), rng.randint(1, 12), rng.getrandbits(24)
        img = f"![{alt}](/images/{year}/{month:02d}/{name:06x}.jpg)"
        paras.insert(rng.randint(1, max(1, len(paras) - 1)), img)
    out = "\n\n".join(paras)
    if "links" in features or "italic" in features or out == text:
        for ph in _link_phrases(out, rng, rng.randint(2, 6)):
            if "italic" in features and "links" not in features:
                out = _wrap_first(out, ph, f"_{ph}_")
            else:
                num = rng.randint(1000, 99999)
                href = rng.choice(("#", f"/topics/{_slug(ph)}", f"/news/{_slug(ph)}-{num}"))
                out = _wrap_first(out, ph, f"[{ph}]({href})")
    return out


_ENTITIES = {
    "'": ("&#8217;", "&#39;", "&rsquo;", "&#x27;"),
    '"': ("&quot;", "&#8220;", "&ldquo;", "&#34;"),
    "&": ("&amp;",),
    " ": ("&nbsp;",),
    "-": ("&#8211;", "&ndash;"),
}


def _entities(text: str, rng: random.Random, rate: float, limit: int | None = None) -> str:
    """Replace some quotes/apostrophes/ampersands (and, failing those, spaces) by HTML entities."""
    style = {k: rng.choice(v) for k, v in _ENTITIES.items()}
    sites = [m.start() for m in re.finditer(r"['\"&]", text)]
    if not sites or (limit is not None and len(sites) < 2):
        sites += [m.start() for m in re.finditer(r"(?<=\w) (?=\w)", text)][:40]
    chosen = sorted(i for i in sites if rng.random() < rate)
    if limit is not None:
        chosen = sorted(rng.sample(sites, min(limit, len(sites))))
    if not chosen and sites:
        chosen = [rng.choice(sites)]
    out, pos = [], 0
    for i in chosen:
        out.append(text[pos:i])
        out.append(style[text[i]])
        pos = i + 1
    out.append(text[pos:])
    return "".join(out)


def html(
    text: str, rng: random.Random, *, level: str = "normal", features: tuple[str, ...] | None = None
) -> str:
    """HTML residue: `<p>` wrappers, `<a>` links, stray `</a>`, and entities (`&#8217;`, `&amp;`, `&quot;`).

    level "light" only swaps a few characters for entities (a nearly clean page).
    """
    if level == "light":
        return _entities(text, rng, 0.0, limit=rng.randint(2, 5))
    all_features = ("p", "p", "links", "entities", "entities", "stray", "div", "br", "strong")
    k = rng.randint(2, 4) if level == "normal" else rng.randint(3, 6)
    features = features or tuple(sorted(set(rng.sample(all_features, k))))
    out = text
    if "entities" in features:
        out = _entities(out, rng, rng.uniform(0.3, 1.0))
    if "links" in features:
        for ph in _link_phrases(out, rng, rng.randint(2, 6)):
            href = rng.choice(("/tag/", "/topic/", "/news/")) + _slug(ph)
            out = _wrap_first(out, ph, f'<a href="{href}">{ph}</a>')
    paras = _paragraphs(out)
    if "strong" in features and paras:
        paras[0] = f"<strong>{paras[0]}</strong>" if rng.random() < 0.5 else f"<h1>{paras[0]}</h1>"
    if "p" in features:
        cls = rng.choice(("", ' class="story-body"', ' class="article__text"', ' dir="ltr"'))
        paras = [f"<p{cls}>{p}</p>" for p in paras]
    if "stray" in features:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(paras))
            tag = rng.choice(("</a>", "</span>", "</div>", "<span>", "</em>"))
            paras[i] = paras[i] + tag if rng.random() < 0.5 else tag + paras[i]
    if "br" in features:
        paras = [p.replace(". ", ".<br/> ", 1) if rng.random() < 0.4 else p for p in paras]
    sep = rng.choice(("\n\n", "\n")) if "p" in features else "\n\n"
    out = sep.join(paras)
    if "div" in features:
        out = f'<div class="{rng.choice(("article-body", "content", "entry-content"))}">\n{out}\n</div>'
    return out


def _sloppy_cp1252() -> list[str]:
    """cp1252 decoding table where undefined bytes fall back to latin-1, as browsers decode."""
    table = []
    for b in range(256):
        try:
            table.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            table.append(chr(b))
    return table


_CP1252 = _sloppy_cp1252()


def _smarten(text: str, rng: random.Random, rate: float) -> str:
    """Typographic quotes and dashes, as a CMS inserts them before the page gets mis-decoded."""

    def q(m: re.Match[str]) -> str:
        if rng.random() >= rate:
            return m.group(0)
        ch, prev = m.group(0), text[m.start() - 1] if m.start() else " "
        if ch == "'":
            return "\u2019" if prev.isalnum() or prev in ".,!?" else "\u2018"
        return "\u201d" if prev.strip() and prev not in "([{" else "\u201c"

    out = re.sub(r"['\"]", q, text)
    dashes = (" \u2014 ", " \u2013 ", "\u2014")
    return re.sub(r" -- | - ", lambda m: rng.choice(dashes) if rng.random() < rate else m.group(0), out)


def mis_decode(text: str, codec: str = "cp1252") -> str:
    """UTF-8 bytes read as cp1252 (sloppy) or latin-1: a curly apostrophe becomes `â€™`, `é` `Ã©`."""
    raw = text.encode("utf-8")
    if codec == "latin-1":
        return raw.decode("latin-1")
    return "".join(_CP1252[b] for b in raw)


def mojibake(
    text: str,
    rng: random.Random,
    *,
    codec: str | None = None,
    smart_rate: float | None = None,
    scope: str | None = None,
    double: bool | None = None,
) -> str:
    """Mojibake: typographic characters encoded UTF-8 and decoded cp1252/latin-1 (`â€™`, `Ã©`).

    scope "all" garbles everything, "body" leaves the first paragraph (title) intact, "some" only
    a random share of paragraphs; `double` applies the mis-decoding twice (`Ã¢â` and so on).
    """
    codec = codec or rng.choice(("cp1252", "cp1252", "cp1252", "latin-1"))
    smart_rate = rng.uniform(0.6, 1.0) if smart_rate is None else smart_rate
    scope = scope or rng.choice(("all", "all", "body", "some"))
    double = rng.random() < 0.1 if double is None else double
    paras = re.split(r"(\n\s*\n)", text)
    body_idx = [i for i in range(0, len(paras), 2)]
    if scope == "body" and len(body_idx) > 1:
        body_idx = body_idx[1:]
    elif scope == "some" and len(body_idx) > 1:
        body_idx = [i for i in body_idx if rng.random() < 0.6] or [body_idx[-1]]
    for i in body_idx:
        p = _smarten(paras[i], rng, smart_rate)
        if p.isascii():
            p = p.replace(". ", ".\u00a0", 1)
        p = mis_decode(p, codec)
        paras[i] = mis_decode(p, codec) if double else p
    out = "".join(paras)
    if out == text:  # nothing typographic in the chosen paragraphs: garble a no-break space instead
        out = mis_decode(text.replace(" ", "\u00a0", 1), codec)
    return out


def _with_level(fn: Callable[..., str], **kw: object) -> Callable[[str, random.Random], str]:
    return lambda text, rng: fn(text, rng, **kw)


def apply(kind: str, text: str, rng: random.Random, level: str = "normal") -> str:
    """Apply one damage kind with parameters drawn from the RNG for the given level.

    "light" is barely visible (a couple of OCR slips, one boilerplate line, a few entities);
    "heavy" is clearly stronger than "normal" for the same kind.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    heavy = level == "heavy"
    light = level == "light"
    if kind == "truncation":
        return truncate(text, rng, frac=rng.uniform(0.3, 0.55) if heavy else rng.uniform(0.3, 0.7))
    if kind == "treebank":
        return treebank(text, rng)
    if kind == "drop_hyphen":
        return drop_hyphenated(text, rng, rate=1.0 if heavy else None)
    if kind == "coref":
        return coref(text, rng, rate=rng.uniform(0.7, 1.0) if heavy else None)
    if kind == "ocr":
        if light:
            return ocr(text, rng, slips=rng.randint(1, 3))
        return ocr(text, rng, rate=rng.uniform(0.02, 0.05) if heavy else rng.uniform(0.004, 0.02))
    if kind == "boilerplate":
        n = 1 if light else rng.randint(5, 9) if heavy else rng.randint(2, 4)
        return boilerplate(text, rng, lines=n)
    if kind == "joined_paragraphs":
        return join_paragraphs(text, rng)
    if kind == "markdown":
        feats = ("links", "bold", "heading", "image") if heavy else None
        return markdown(text, rng, features=feats)
    if kind == "html":
        return html(text, rng, level=level)
    if kind == "mojibake":
        return mojibake(text, rng, scope="all" if heavy else None, smart_rate=1.0 if heavy else None)
    raise ValueError(f"unknown damage kind {kind!r}")


def apply_all(
    text: str, kinds: list[str], rng: random.Random, levels: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """Apply several kinds in pipeline order; returns the text and the kinds that changed it."""
    levels = levels or {}
    done: list[str] = []
    for kind in sorted(kinds, key=KINDS.index):
        new = apply(kind, text, rng, levels.get(kind, "normal"))
        if new != text:
            done.append(kind)
            text = new
    return text, done
