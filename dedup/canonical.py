"""Pick the cleanest member of a cluster, and say why in words.

The ranking is by ``quality.score`` only: never by file order or length, which
scrapers do not control. Exact ties (byte-identical copies) go to the first in
manifest order, so the choice is the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dedup.quality import relative_excess, score
from dedup.records import ALONE


@dataclass(frozen=True, slots=True)
class Member:
    index: int  # manifest position; the final tie-break
    path: str
    signals: dict[str, float]


@dataclass(frozen=True, slots=True)
class Scored:
    member: Member
    score: float
    penalties: dict[str, float]

    def worst(self, n: int = 2) -> str:
        """The largest penalties as text, e.g. ``treebank -0.40, gaps -0.31``."""
        top = sorted(((v, k) for k, v in self.penalties.items() if v >= 0.005), reverse=True)[:n]
        return ", ".join(f"{k} -{v:.2f}" for v, k in top) or "no damage found"


def rank(members: Sequence[Member]) -> list[Scored]:
    """Members scored, best first; damage counts above the cluster's floor (``relative_excess``).

    The scored members carry the signals as ranked (excess over the floor).

    Example:
        >>> clean = Member(0, "a.txt", {"treebank": 0.0, "completeness": 0.5})
        >>> garbled = Member(1, "b.txt", {"treebank": 4.0, "completeness": 1.0})
        >>> [s.member.path for s in rank([garbled, clean])]
        ['a.txt', 'b.txt']
    """
    if len(members) > 1:
        excess = relative_excess([m.signals for m in members])
        members = [Member(m.index, m.path, s) for m, s in zip(members, excess, strict=True)]
    scored = [Scored(m, *score(m.signals)) for m in members]
    return sorted(scored, key=lambda s: (-s.score, s.member.index))


def canonical_reason(ranked: Sequence[Scored]) -> str:
    """Why the first of ``ranked`` was kept."""
    best = ranked[0]
    if len(ranked) == 1:
        return f"{ALONE} (score {best.score:.2f}: {best.worst()})"
    runner = ranked[1]
    if runner.score == best.score:
        return (
            f"cleanest of {len(ranked)} (tied at {best.score:.2f} with {runner.member.path}; first in order)"
        )
    return (
        f"cleanest of {len(ranked)}: score {best.score:.2f} ({best.worst()}); "
        f"next best {runner.member.path} {runner.score:.2f} ({runner.worst()})"
    )


def duplicate_reason(member: Scored, best: Scored, match: str) -> str:
    """Why a member was not kept."""
    if f"{member.score:.2f}" == f"{best.score:.2f}":  # as printed: "1.00 < 1.00" would read as nonsense
        return f"near-duplicate ({match}); tied at {member.score:.2f}, later in order than {best.member.path}"
    return f"near-duplicate ({match}); score {member.score:.2f} < {best.score:.2f} ({member.worst()})"
