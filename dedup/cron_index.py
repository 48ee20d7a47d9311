"""The index stage of a cron run: the candidate pairs of this run's texts, from what the state holds.

In order of cost: the last run's pairs as they are (the same texts); the new texts
banded against the stored ones where their band keys lie (``band_store``); the
stored signatures streamed out of SQLite into a spill and the new texts banded
against them (``stored.streamed``, ``KnownPairs.extended``); every text banded
again on the workers (a star's first text moved, or a known text gone where the
band store cannot take it out). Each path leaves the band store holding every
text for the next run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dedup import band_store, stored
from dedup.config import Config
from dedup.rows import signature_chunks
from dedup.signature_spill import Blocks, Spilled
from dedup.state import State

if TYPE_CHECKING:
    from dedup.parallel import Engine
    from dedup.pass1 import FeatureTable
    from dedup.pass2 import Corpus


@dataclass(frozen=True, slots=True)
class Banded:
    proposed: int  # pairs banding proposed
    pairs: np.ndarray  # those the prefilter kept
    found: stored.KnownPairs | None  # the pairs, if banded anew this run (the state stores them)
    signatures: stored.SignatureRows  # of the rows this run writes


def banded(
    config: Config,
    feats: FeatureTable,
    corpus: Corpus,
    fresh: Sequence[int],
    bands: int,
    rows: int,
    engine: Engine,
    *,
    known: stored.KnownPairs | None,
    store: State,
    out: Path,
) -> Banded:
    """This run's candidate pairs, and the signatures its written rows need (``feats``' are dropped)."""
    contents = feats.contents.numbers()

    def streamed() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return signature_chunks(store)

    if known is not None and known.hold_for(contents, bands, rows):
        # A document read again may share its text with one that was not: its row needs the signature.
        held = stored.held_signatures(feats, corpus, fresh, streamed)
        kept = stored.keep_signatures(feats, held)
        feats.drop_signatures()
        return Banded(known.proposed, known.pairs, None, kept)
    same_layout = known is not None and (known.bands, known.rows) == (bands, rows)
    if same_layout and (from_store := _from_store(config, feats, corpus, fresh, contents, known, store)):
        return from_store
    # Texts not read this run came without their signatures: banding reads them all, from a
    # spill a block at a time (1 KB per text, never all in memory), with the new ones.
    from dedup import index, index_workers

    with Spilled.beside(out, num_perm=config.num_perm, width=index.band_width(rows)) as spill:
        signatures, held = stored.streamed(feats, corpus, fresh, streamed, spill)
        found = known.extended(signatures, contents, corpus.sizes, config) if same_layout and known else None
        if found is None:  # texts gone, or a star's first text moved: band them all, on the workers
            with Spilled.of_blocks(out, signatures) as ordered:
                found = index_workers.known_pairs(
                    config, ordered, corpus.sizes, contents, bands, rows, engine
                )
                _keep_bands(config, store, contents, ordered, bands, rows)
        else:
            _keep_bands(config, store, contents, signatures, bands, rows)
    kept = stored.keep_signatures(feats, held)
    feats.drop_signatures()  # the ones to store are kept
    return Banded(found.proposed, found.pairs, found, kept)


def _from_store(
    config: Config,
    feats: FeatureTable,
    corpus: Corpus,
    fresh: Sequence[int],
    contents: np.ndarray,
    known: stored.KnownPairs | None,
    state: State,
) -> Banded | None:
    """The new texts banded against the stored ones where the state's band keys lie, the gone
    ones taken out there (``band_store``); None if they cannot be (then every signature is streamed)."""
    if known is None or not band_store.fits(config.num_perm, known.bands, known.rows):
        return None
    stamp = state.stamp_text() or ""
    store = band_store.Store.open(state.path.parent, stamp, known.bands)
    if store is None:
        return None
    try:
        signatures = band_store.StoredSignatures.made(store, contents, known.contents, *feats.given())
        if signatures is None:
            return None
        # Known texts gone: taken out where the store holds their keys.
        gone = len(contents) - len(signatures.new) < len(known.contents)
        before = band_store.StoredSignatures.stored(store, known.contents) if gone else None
        if gone and before is None:
            return None
        if (found := known.extended(signatures, contents, corpus.sizes, config, before=before)) is None:
            return None
        held = stored.held_texts(feats, corpus, fresh)
        rows_of = signatures.subset(held)
        kept = stored.keep_signatures(
            feats, {t: r.tobytes() for t, r in zip(held.tolist(), rows_of, strict=True)}
        )
        feats.drop_signatures()
        signatures.keep_new(stamp)
        return Banded(found.proposed, found.pairs, found, kept)
    except band_store.Damaged:
        store.discard()  # written anew by the streamed path
        return None
    finally:
        store.close()


def _keep_bands(
    config: Config, state: State, contents: np.ndarray, signatures: Blocks, bands: int, rows: int
) -> None:
    """Every text's band keys as the state's store, for the next run to band against (unless its
    segments hold them all already: texts gone leave it true)."""
    if not band_store.fits(config.num_perm, bands, rows):
        return
    stamp = state.stamp_text() or ""
    store = band_store.Store.open(state.path.parent, stamp, bands)
    if store is not None:
        store.close()
        if band_store.among(contents, store.contents).all():
            return
    band_store.replace(state.path.parent, stamp, contents, signatures, bands)
