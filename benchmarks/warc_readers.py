"""WARC reading speed: FastWARC against warcio on one generated .warc.gz, and dedup's own reader.

    python benchmarks/warc_readers.py [--records 20000] [--repeat 3]

It writes a WARC of `--records` HTML responses (a gzip member per record, each
followed by its request record, ~4 KB pages of news-like text from the bundled
sample corpus) and reads it back, best of `--repeat`, with:

* fastwarc: `ArchiveIterator(parse_http=True)`, every payload read;
* warcio: `ArchiveIterator`, every payload read (`content_stream()`), if installed;
* dedup reader: `dedup.readers.warc_documents` - framing, FastWARC parsing, charset
  decoding and main-text extraction (resiliparse), i.e. everything pass 1 does
  before normalising;
* dedup framing+parse: the same without decoding and extraction (`Config.max_bytes` applies).

It prints responses per second for each. warcio is not a dependency of dedup;
`pip install warcio` to include it.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dedup.config import Config  # noqa: E402
from dedup.document import Source  # noqa: E402
from dedup.readers import warc as dedup_warc  # noqa: E402

HTTP_RESPONSE, HTTP_REQUEST = "application/http; msgtype=response", "application/http; msgtype=request"


def _record(kind: str, uri: str, block: bytes, block_type: str) -> bytes:
    rid = uuid.uuid5(uuid.NAMESPACE_URL, f"{kind} {uri}")
    head = (
        f"WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{rid}>\r\n"
        f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {uri}\r\n"
        f"Content-Type: {block_type}\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def make_warc(path: Path, n: int, seed: int = 1) -> None:
    words = " ".join(
        p.read_text() for p in sorted((REPO / "corpora" / "sample").rglob("*.txt"))[:200]
    ).split()
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        for k in range(n):
            start = rng.randrange(len(words) - 700)
            paragraphs = "".join(
                f"<p>{' '.join(words[start + 100 * i : start + 100 * (i + 1)])}</p>" for i in range(6)
            )
            body = (
                f"<html><head><meta charset='utf-8'><title>Story {k}</title></head><body>"
                f"<nav>Home | World | Sport</nav><article>{paragraphs}</article>"
                "<footer>Subscribe to our newsletter</footer></body></html>"
            ).encode()
            http = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}"
            uri = f"https://news.example/{k}"
            response = _record("response", uri, http.encode() + b"\r\n\r\n" + body, HTTP_RESPONSE)
            fh.write(gzip.compress(response, 1))
            fh.write(gzip.compress(_record("request", uri, b"GET / HTTP/1.1\r\n\r\n", HTTP_REQUEST), 1))


def read_fastwarc(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh, parse_http=True, record_types=WarcRecordType.response):
            record.reader.read()
            n += 1
    return n


def read_warcio(path: Path) -> int:
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            if record.rec_type == "response":
                record.content_stream().read()
                n += 1
    return n


def read_dedup(path: Path) -> int:
    source = Source("warc", str(path), "")
    return sum(doc.status == "ok" for doc in dedup_warc.warc_documents(source, Config(), 0))


def read_dedup_parse(path: Path) -> int:
    from dedup.readers.containers import open_stream

    n = 0
    with open_stream(str(path)) as fh:
        while (framed := dedup_warc._frame(fh, 1 << 24)) is not None:
            block, length, _ = framed
            raw = block + fh.read(length) + dedup_warc._trailer(fh)
            n += dedup_warc.parse(raw).skip is None
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    readers: dict[str, Callable[[Path], int]] = {
        "fastwarc": read_fastwarc,
        "warcio": read_warcio,
        "dedup framing+parse": read_dedup_parse,
        "dedup reader (+decode, extract)": read_dedup,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.warc.gz"
        make_warc(path, args.records)
        size = path.stat().st_size
        print(
            f"{args.records:,} responses (+ as many requests), {size / 1e6:.1f} MB gzip, "
            f"best of {args.repeat}"
        )
        print(f"{'reader':34} | {'responses/s':>11} | {'s':>6}")
        print("-" * 58)
        for name, fn in readers.items():
            try:
                best = float("inf")
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    n = fn(path)
                    best = min(best, time.perf_counter() - t0)
            except ImportError:
                print(f"{name:34} | {'not installed':>11} |")
                continue
            assert n == args.records, (name, n)
            print(f"{name:34} | {n / best:11,.0f} | {best:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
