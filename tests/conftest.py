"""Fixtures: a few hand-written articles and the damage scrapers do to them.

The damage helpers here are the tests' own, deliberately simple versions; the
benchmark's generator (corpora/) is separate, so the scorer is not checked
against the same code that produced its training intuition.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

COUNCIL = """The city council voted on Tuesday to approve a new budget that sets aside money for three parks, two libraries and a long-delayed repair of the harbor bridge.

Mayor Ellen Brandt said the vote was a turning point for neighborhoods that have waited years for basic services. "We can't keep asking people to be patient," she told reporters after the meeting. "They've been patient for a decade."

The budget passed by seven votes to four. Opponents said the plan relies on optimistic revenue forecasts and warned that a downturn would force deep cuts within two years. Councilman Raymond Ortiz called the spending a well-intentioned gamble with money the city does not have.

Construction on the bridge is expected to begin in the spring and last eighteen months. During that time ferries will run every twenty minutes, and the transit agency will add express buses on the northern route.

The library branches, in the east and west districts, will open in 2026. Officials said both buildings would use solar panels and recycled materials, and that the design was chosen after a series of public hearings last year."""

STORM = """A powerful storm swept across the northern coast overnight, knocking out power to more than forty thousand homes and closing schools in at least six counties.

Emergency crews worked through the night to clear fallen trees from the main highway, which reopened shortly after dawn. Forecasters said the winds reached ninety kilometres an hour near the lighthouse at Cape Merrow.

Residents described a frightening night. "The windows were shaking and the lights went out just after midnight," said Tomas Lindqvist, a fisherman who has lived in the village for thirty years. He said his boat had been torn from its mooring and found on the rocks.

The regional utility said most customers should have power restored by Thursday evening, although some remote areas could wait until the weekend. It urged people to stay away from downed lines and to report damage through its website.

The storm is expected to weaken as it moves inland, but flood warnings remain in place along the river valley, where heavy rain has already swollen several streams."""

STORM_OTHER = """Schools in six northern counties will stay closed on Wednesday as officials assess damage from the storm that hit the coast this week, the education department announced.

Inspectors are checking roofs and windows at more than eighty buildings. A spokeswoman said classes would resume only when every school had been declared safe, and that families would be told by text message.

Teachers have been asked to prepare online lessons in case the closures last into next week. Parents in the village of Cape Merrow said they were worried about children who do not have internet access at home.

The department said it would provide printed work packs at community centres, and that school meals would be available for collection at two sites each afternoon.

The storm brought down trees and power lines across the region. The utility has restored electricity to most homes, but thousands of customers are still waiting."""

MUSEUM = """The national museum reopened its ancient history wing on Saturday after a three-year renovation that cost more than twelve million euros.

Visitors queued around the block to see the restored galleries, which now include a reconstructed merchant ship and a collection of bronze tools discovered in a river bed in 1987. The museum said the new lighting allowed details on the objects to be seen for the first time.

The director, Amira Haddad, said the renovation had been planned with schools in mind. "Every room has something children can touch," she said. "History should not only be behind glass."

Entry to the wing will be free for the first month. After that, tickets will cost eight euros for adults, with reduced prices for students and pensioners.

The museum expects half a million visitors this year, a record. Its cafe and shop have also been rebuilt, and a new entrance on the river side has been opened for wheelchair users."""

ARTICLES = {"council": COUNCIL, "storm": STORM, "storm_other": STORM_OTHER, "museum": MUSEUM}

_PRONOUNS = re.compile(r"\b(he|she|him|her|they|them|his)\b", re.IGNORECASE)


def treebank(text: str) -> str:
    """Penn-Treebank spacing and joined paragraphs, as a tokenising pipeline leaves them."""
    text = re.sub(r"n't\b", " n't", text)
    text = re.sub(r"'(s|ve|re|ll|d)\b", r" '\1", text)
    text = re.sub(r'"(?=\w)', "`` ", text)
    text = re.sub(r'(?<=[\w.,])"', " ''", text)
    text = re.sub(r"(?<=\w)([,.;:?!])", r" \1", text)
    return " ".join(text.split())


def drop_hyphenated(text: str) -> str:
    return re.sub(r"\b\w+-\w+(?:-\w+)*\b", "   ", text)


def coref(text: str, phrase: str) -> str:
    """Pronouns replaced by an antecedent phrase: the phrase repeats all over."""
    return _PRONOUNS.sub(phrase, text)


def truncate(text: str, fraction: float) -> str:
    words = text.split(" ")
    return " ".join(words[: int(len(words) * fraction)])


def mojibake(text: str) -> str:
    curly = text.replace("'", "\u2019").replace(' "', " \u201c").replace('" ', "\u201d ")
    return curly.encode("utf-8").decode("cp1252", errors="replace")


def html(text: str) -> str:
    paragraphs = text.split("\n\n")
    return "\n".join(f"<p>{p.replace(chr(39), '&#8217;')}</p>" for p in paragraphs)


def markdown(text: str) -> str:
    return re.sub(r"\b([A-Z][a-z]+ [A-Z][a-z]+)\b", r"[\1](#)", text)


def boilerplate(text: str) -> str:
    return f"Home | News | Local\nAdvertisement\n{text}\nSubscribe to our newsletter\nShare this article"


def ocr(text: str) -> str:
    out = []
    for i, word in enumerate(text.split(" ")):
        if i % 9 == 4 and len(word) > 3:
            word = word.replace("e", "c", 1).replace("l", "1", 1).replace("m", "rn", 1)
        out.append(word)
    return " ".join(out)


def join_paragraphs(text: str) -> str:
    return " ".join(text.split("\n\n"))


def garble(text: str, phrase: str) -> str:
    """The hard case: treebank spacing, dropped hyphenated words and coreference garbage."""
    return treebank(coref(drop_hyphenated(text), phrase))


NOISE: dict[str, Callable[[str], str]] = {
    "treebank": treebank,
    "dropped_hyphenated": drop_hyphenated,
    "coref": lambda t: coref(t, "The city official"),
    "mojibake": mojibake,
    "html": html,
    "markdown": markdown,
    "boilerplate": boilerplate,
    "ocr": ocr,
}


def scrape_files(prefix: str = "") -> dict[str, str]:
    """A small scrape: two garbled copies of one article, a clean and a boilerplate copy of another, one unrelated."""
    return {
        f"{prefix}council-a.txt": garble(COUNCIL, "The city council member"),
        f"{prefix}council-b.txt": NOISE["html"](garble(COUNCIL, "Mayor Ellen Brandt")),
        f"{prefix}storm.txt": STORM,
        f"{prefix}storm-boiler.txt": NOISE["boilerplate"](STORM),
        f"{prefix}schools.txt": STORM_OTHER,
    }


@pytest.fixture
def write_tree(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """Write {relative path: text or bytes} under tmp_path/in and return that directory."""

    def write(files: dict[str, str | bytes]) -> Path:
        root = tmp_path / "in"
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        root.mkdir(exist_ok=True)
        return root

    return write


def read_manifest(out: Path) -> list[dict]:
    return [orjson.loads(line) for line in (out / "manifest.jsonl").read_bytes().splitlines()]


def by_path(out: Path) -> dict[str, dict]:
    return {r["path"]: r for r in read_manifest(out)}


def warc_record(kind: str, uri: str, body: bytes = b"", content_type: str = "text/html; charset=utf-8",
                version: str = "1.1", status: str = "200 OK", record_id: str | None = None) -> bytes:  # fmt: skip
    """One WARC record, framed as the standard says (no library: the test must not share the reader's).

    Its ``WARC-Record-ID`` is a UUID made from kind and URI, or ``record_id`` as given.
    """
    if kind == "response":
        http = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        block, block_type = http.encode() + body, "application/http; msgtype=response"
    elif kind == "request":
        block, block_type = (
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "application/http; msgtype=request",
        )
    else:
        block, block_type = body, content_type
    record_id = record_id or f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{kind} {uri}')}"
    headers = (
        f"WARC/{version}\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <{record_id}>\r\n"
        f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {uri}\r\n"
        f"Content-Type: {block_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return headers.encode() + block + b"\r\n\r\n"
