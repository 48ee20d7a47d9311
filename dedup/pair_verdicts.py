"""A giant group's pair verdicts kept from one cron run to the next (``large_groups.split``).

A pair of texts is verified again only if one of them is new, one of its lines is
counted past the limit its verdicts rest on (``freq_bounds``), or its reach now
leaves out other lines than the ones it was compared with (``Windows``).
"""

from __future__ import annotations

import struct

import numpy as np

from dedup import freq_bounds
from dedup.frequency import TokenFrequency
from dedup.signatures import distinct, find_sorted


class PairVerdicts:
    """Split groups' pair verdicts by ``pair_keys``, from the state's last run; this run's, to store;
    and, by ``text_keys``, the limits of the lines the verdicts left in (``freq_bounds``) and the
    reaches the texts' lines hold for (``Windows``).

    Stored as a blob: the counts of accepted and rejected keys and of windows, the keys,
    sorted (8 bytes each: 0.6 MB for the noisy million's giant group), the windows, then
    the limits (``Bounds``). Verdicts stored without limits or windows (an earlier
    version's) are not used.
    """

    _HEADER = struct.Struct("<4sQQQ")
    _MAGIC = b"PV3\0"

    def __init__(
        self,
        accepted: np.ndarray | None = None,
        rejected: np.ndarray | None = None,
        bounds: freq_bounds.Bounds | None = None,
        windows: Windows | None = None,
    ) -> None:
        empty = np.empty(0, dtype=np.uint64)
        self.accepted = empty if accepted is None else accepted
        self.rejected = empty if rejected is None else rejected
        self.bounds = bounds  # None: the verdicts' limits are not known (``stale``: every text)
        self.windows = Windows.of() if windows is None else windows  # the last run's, by text key
        self.reads: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # this run's windows
        self.recorded: list[tuple[np.ndarray, np.ndarray]] = []
        self.texts: list[np.ndarray] = []  # this run's texts' keys, whose limits are stored
        self.limits: list[freq_bounds.Found] = []  # the limits found this run, by text key
        self.verified: list[np.ndarray] = []  # the texts (keys) whose limits were found this run
        self._crossed: np.ndarray | None = None

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Per key: 1 accepted, 0 rejected, -1 unknown.

        >>> PairVerdicts(np.array([5], np.uint64), np.array([2, 9], np.uint64)).lookup(
        ...     np.array([9, 5, 4], np.uint64)).tolist()
        [0, 1, -1]
        """
        out = np.full(len(keys), -1, dtype=np.int8)
        for value, table in ((1, self.accepted), (0, self.rejected)):
            out[find_sorted(table, keys)[1]] = value
        return out

    def stale(self, texts: np.ndarray, frequency: TokenFrequency) -> np.ndarray:
        """Per text key: whether a verdict on it may no longer hold (one of its lines is counted past
        its limit; or the verdicts came without limits)."""
        if self.bounds is None:
            return np.ones(len(texts), dtype=bool)
        if self._crossed is None:
            self._crossed = self.bounds.crossed(frequency)
        return np.isin(texts, self._crossed)

    def outside(self, texts: np.ndarray, overs: np.ndarray) -> np.ndarray:
        """Per text key, with its reach's ``furniture_over`` now: whether its lines may be others than
        the ones its verdicts were taken on (no window stored, or ``overs`` out of it)."""
        lo, hi = self.windows.get(texts)
        return ~((lo <= overs) & (overs < hi))

    def record_windows(
        self, texts: tuple[np.ndarray, np.ndarray], read: np.ndarray, overs: np.ndarray, lowest: np.ndarray
    ) -> None:
        """Texts (nodes) read this run, of a group whose texts are ``(nodes, keys)``: their lines are the
        same from ``overs`` up to (not including) ``lowest``."""
        self.reads.append((texts[1][np.searchsorted(texts[0], read)], overs, lowest))

    def furniture(self, texts: np.ndarray, overs: np.ndarray) -> np.ndarray:
        """Per text key, the reach (``furniture_over``) that stands for its lines, alike while they
        are: its window's first, for a text whose stored window holds it and not read this run (its
        window carried on); else ``overs``, where this run's window starts."""
        lo, hi = self.windows.get(texts)
        # (A stale text, or one out of its window, was read: its window is this run's.)
        carried = (lo <= overs) & (overs < hi) & ~np.isin(texts, self._windows_now().keys)
        return np.where(carried, lo, overs)

    def _windows_now(self) -> Windows:
        keys, lo, hi = (
            (np.concatenate(a) for a in zip(*self.reads, strict=True)) if self.reads else Windows.empty()
        )
        return Windows.of(keys, lo, hi)

    def found(
        self, texts: tuple[np.ndarray, np.ndarray], found: freq_bounds.Found, pairs: np.ndarray
    ) -> None:
        """Limits found verifying ``pairs`` (per node), for the texts ``(nodes, keys)`` of their group.
        Their texts' limits are these now (none, where every line is furniture): not carried."""
        nodes, keys, limits = found
        self.limits.append((texts[1][np.searchsorted(texts[0], nodes)], keys, limits))
        self.verified.append(texts[1][np.searchsorted(texts[0], np.unique(pairs))])

    def record(self, keys: np.ndarray, accepted: np.ndarray, texts: np.ndarray | None = None) -> None:
        """This run's verdicts on pairs (``keys``), among the texts ``texts`` (keys)."""
        self.recorded.append((keys, accepted))
        if texts is not None:
            self.texts.append(texts)

    def dumps(self) -> bytes:
        """The verdicts recorded this run (the ones looked up and not recorded are dropped), and the
        limits of their texts: found this run, else carried from the last."""
        keys = np.concatenate([k for k, _ in self.recorded] or [np.empty(0, dtype=np.uint64)])
        mask = np.concatenate([a for _, a in self.recorded] or [np.empty(0, dtype=bool)])
        accepted, rejected = distinct(keys[mask]), distinct(keys[~mask])
        limits = self.limits or [(np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int64))]
        found = freq_bounds.Bounds.found(*(np.concatenate(a) for a in zip(*limits, strict=True)))
        texts = np.concatenate(self.texts or [np.empty(0, dtype=np.uint64)])
        parts: list[tuple[freq_bounds.Bounds, np.ndarray | None]] = [(found, None)]
        if self.bounds is not None:
            verified = np.concatenate(self.verified or [np.empty(0, dtype=np.uint64)])  # found's too
            parts.append((self.bounds, self.bounds.of(np.setdiff1d(texts, verified))))
        read = self._windows_now()
        windows = read.joined(self.windows.taken(np.setdiff1d(texts, read.keys)))
        head = self._HEADER.pack(self._MAGIC, len(accepted), len(rejected), len(windows.keys))
        bounds = freq_bounds.Bounds.dump_joined(parts)
        verdicts = (accepted.astype("<u8").tobytes(), rejected.astype("<u8").tobytes())
        return b"".join((head, *verdicts, windows.dumps(), bounds))

    @classmethod
    def loads(cls, blob: bytes | None) -> PairVerdicts:
        """The stored verdicts; none (all verified again) when there are none or they are unreadable."""
        size = cls._HEADER.size
        if blob is None or len(blob) < size:
            return cls()
        magic, n, m, w = cls._HEADER.unpack_from(blob)
        if magic != cls._MAGIC or len(blob) < size + 8 * (n + m + 3 * w):
            return cls()
        keys = np.frombuffer(blob, dtype="<u8", count=n + m, offset=size).astype(np.uint64)
        at = size + 8 * (n + m)
        windows = Windows.loads(blob[at : at + 24 * w], w)
        bounds = freq_bounds.Bounds.loads(blob[at + 24 * w :])
        return cls() if bounds is None or windows is None else cls(keys[:n], keys[n:], bounds, windows)


class Windows:
    """Per text key (sorted, distinct), the reaches its lines hold for, as ``furniture_over`` values
    in [lo, hi): read at lo, and hi the lowest count among the lines left out."""

    def __init__(self, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self.keys, self.lo, self.hi = keys, lo, hi

    @staticmethod
    def empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)

    @classmethod
    def of(cls, *columns: np.ndarray) -> Windows:
        """From (keys, lo, hi) in any order, a key's first kept (a text read twice in a run: alike)."""
        keys, lo, hi = columns or cls.empty()
        keys, first = np.unique(np.asarray(keys, dtype=np.uint64), return_index=True)
        return cls(keys, np.asarray(lo, dtype=np.int64)[first], np.asarray(hi, dtype=np.int64)[first])

    def get(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of each text key; an empty window (1, 0) for one not held."""
        at, found = find_sorted(self.keys, np.asarray(texts, dtype=np.uint64))
        lo = np.where(found, self.lo[at] if len(self.keys) else 1, 1)
        return lo, np.where(found, self.hi[at] if len(self.keys) else 0, 0)

    def taken(self, texts: np.ndarray) -> Windows:
        """The windows of those of ``texts`` held here."""
        keep = np.isin(self.keys, texts)
        return Windows(self.keys[keep], self.lo[keep], self.hi[keep])

    def joined(self, other: Windows) -> Windows:
        """These and ``other``'s (keys apart)."""
        return Windows.of(
            *(
                np.concatenate(c)
                for c in zip((self.keys, self.lo, self.hi), (other.keys, other.lo, other.hi), strict=True)
            )
        )

    def dumps(self) -> bytes:
        return b"".join(
            c.astype("<u8" if c is self.keys else "<i8").tobytes() for c in (self.keys, self.lo, self.hi)
        )

    @classmethod
    def loads(cls, data: bytes, count: int) -> Windows | None:
        """``count`` windows as ``dumps`` wrote them; None if the keys are not sorted and distinct."""
        keys = np.frombuffer(data, dtype="<u8", count=count).astype(np.uint64)
        lo, hi = (
            np.frombuffer(data, dtype="<i8", count=2 * count, offset=8 * count)
            .astype(np.int64)
            .reshape(2, -1)
        )
        if np.any(keys[1:] <= keys[:-1]) or np.any(lo > hi):
            return None
        return cls(keys, lo, hi)
