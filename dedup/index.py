"""MinHash signatures -> candidate pairs, with datasketch's ``MinHashLSH``.

The index is tuned for recall: it only proposes pairs, and ``cluster.verify``
decides on the exact shingle sets. A pair that the index misses is lost for good,
a pair it proposes wrongly costs one set intersection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import MinHashLSH

from dedup.signatures import Signer

# Missing a true pair is worse than verifying a false one: weight recall 9:1.
LSH_WEIGHTS = (0.1, 0.9)


def make_index(*, threshold: float, num_perm: int) -> MinHashLSH:
    """An empty in-memory index with dedup's recall-weighted band layout."""
    return MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)


def candidate_pairs(
    signatures: Sequence[np.ndarray], signer: Signer, *, threshold: float
) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Index every signature, query each, and return the sorted pairs (i < j) plus (bands, rows).

    Example:
        >>> from dedup.signatures import Signer, shingle_hashes
        >>> signer = Signer(num_perm=128, seed=1)
        >>> sigs = [signer.sign(shingle_hashes(t.split(), 2)) for t in ("a b c d", "a b c d", "x y z w")]
        >>> candidate_pairs(sigs, signer, threshold=0.3)[0]
        [(0, 1)]
    """
    lsh = make_index(threshold=threshold, num_perm=signer.num_perm)
    leans = [signer.lean(sig) for sig in signatures]
    with lsh.insertion_session() as session:
        for key, lean in enumerate(leans):
            session.insert(key, lean, check_duplication=False)
    pairs: set[tuple[int, int]] = set()
    for key, lean in enumerate(leans):
        pairs.update((key, other) for other in lsh.query(lean) if other > key)
    return sorted(pairs), (lsh.b, lsh.r)
