"""Fuzzing the readers and the normaliser: any bytes become a status or tokens, quickly.

``check`` is the property; ``benchmarks/fuzz.py`` runs it on many more inputs.
"""

import math
import tempfile
import time
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup import Config, normalize, quality, readers
from dedup.document import Status

SECONDS_PER_DOCUMENT = 2.0  # generous on a loaded 2-core machine; the quadratic cases took minutes

_PIECES = [
    "<!--", "-->", " <!-- x", "<a href=", "<p>", "</p>", "&#", "&amp;", "[x](", "](", "**", "__", "_a_",
    "  ", "\n", "\r\n", "\t", "Advertisement", "|", "\u00bb", " ,", "ca n't", "``", "''", "\u00c3\u00a9",
    "\u4e2d\u6587", "\u0e44\u0e17\u0e22", "wou1d", "\ufeff", "\x00", "<meta charset=", "\u202e",
]  # fmt: skip
_ENCODINGS = ["utf-16", "latin-1", "cp1252"]


def _joined(pieces: list[str]) -> bytes:
    return "".join(pieces).encode()


# Bytes of four kinds: anything at all, text made of markup and script fragments,
# one fragment repeated thousands of times (the shape of the quadratic cases), and
# text in another encoding.
documents = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=8), max_size=400).map(_joined),
    st.builds(lambda piece, n: (piece * n).encode(), st.sampled_from(_PIECES), st.integers(1, 20_000)),
    st.builds(lambda raw, e: raw.encode(e, "replace"), st.text(max_size=500), st.sampled_from(_ENCODINGS)),
)


def check(data: bytes, suffix: str) -> float:
    """Read ``data`` as a file named ``*suffix`` and normalise it; the seconds it took."""
    config = Config(jobs=1)
    with tempfile.TemporaryDirectory(prefix="dedup-fuzz-") as tmp:
        path = Path(tmp) / f"doc{suffix}"
        path.write_bytes(data)
        (doc,) = readers.iter_documents(readers.discover([path]), config, read=False)
        started = time.perf_counter()
        readers.read_file(doc, config)
        assert doc.size == len(data)
        if doc.status is not Status.OK:
            assert doc.error and doc.text is None
            return time.perf_counter() - started
        assert isinstance(doc.text, str)
        repaired = normalize.repair(doc.text)
        comparison = normalize.comparison_text(repaired)
        toks = normalize.tokens(repaired)
        assert all(t and not any(c.isspace() for c in t) for t in toks)
        assert len(normalize.line_keys(comparison)) <= comparison.count("\n") + 1
        signals = quality.intrinsic(doc.text, repaired, comparison)
        assert all(math.isfinite(v) and v >= 0 for v in signals.values())
        return time.perf_counter() - started


@settings(derandomize=True, max_examples=120, deadline=None, database=None)
@given(data=documents, suffix=st.sampled_from([".txt", ".html"]))
@example(data=(" <!-- x" * 20_000).encode(), suffix=".txt")  # issue #11: minutes before the fix
def test_any_bytes_become_a_status_or_tokens_in_bounded_time(data: bytes, suffix: str) -> None:
    assert check(data, suffix) < SECONDS_PER_DOCUMENT
