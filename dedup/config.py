"""One frozen configuration, validated once, before any file is touched.

Every field has exactly one CLI flag (``dedup run --help`` lists them with these
defaults); library callers build a ``Config`` directly.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from dedup.errors import ConfigError

# Text files, then containers (JSON Lines and WARC, plain or compressed): every record is a document.
DEFAULT_GLOBS = (
    "*.txt", "*.md", "*.html", "*.htm",
    "*.jsonl", "*.ndjson", "*.warc",
    "*.jsonl.gz", "*.jsonl.zst", "*.jsonl.bz2", "*.jsonl.xz",
    "*.ndjson.gz", "*.ndjson.zst", "*.ndjson.bz2", "*.ndjson.xz",
    "*.warc.gz", "*.warc.zst", "*.warc.bz2", "*.warc.xz",
)  # fmt: skip

ENGINES = ("local", "dask")
MAX_BYTES = (1 << 63) - 1
MAX_JOBS = 1024  # processes forked on one machine (--jobs 100000 forked until the machine gave out)


@dataclass(frozen=True, slots=True)
class Config:
    """Options of one ``dedup run``.

    Args:
        globs: File-name patterns taken from INPUT directories (``--glob``).
        id_field: JSONL field holding a record's id (``--id-field``).
        text_field: JSONL field holding a record's text (``--text-field``).
        shingle_size: Words per shingle (``--shingle-size``).
        num_perm: MinHash permutations (``--num-perm``).
        seed: MinHash seed (``--seed``).
        lsh_threshold: Jaccard level the LSH index is tuned to, weighted 9:1 towards
            recall; low, because the index only proposes candidates and exact
            verification decides (``--lsh-threshold``). At the defaults datasketch
            picks 128 bands of 2 rows: a pair at Jaccard 0.2 is proposed 99.5% of the time.
        jaccard: Verified pairs need at least this shingle Jaccard ... (``--jaccard``)
        containment: ... or at least this containment, the share of the smaller
            document's shingles found in the larger one (``--containment``).
        min_shared: Shingles two documents must share before containment counts,
            so that a three-line stub is not "contained" by chance (``--min-shared``).
        max_bytes: Larger files are recorded as ``too_large`` and skipped (``--max-bytes``).
        follow_links: Read files behind symbolic links that lead out of their INPUT directory;
            by default they are recorded as ``outside``, so that a link to a private file is
            never published in ``canonical/`` (``--follow-links``).
        jobs: Worker processes; 0 means one per core (``--jobs``). With ``engine="dask"`` and
            no scheduler, the local cluster's workers.
        engine: Where the two passes run: ``local`` (processes forked from this one) or
            ``dask`` (a Dask cluster; ``pip install 'dedup[dask]'``). Results are identical
            (``--engine``).
        scheduler: Address of a running Dask scheduler (``tcp://host:8786``); ``None`` starts a
            local cluster on loopback (``--scheduler``).
        force: Allow a non-empty OUT; dedup's own files there are replaced (``--force``).
        state: Directory of the persistent state for incremental (cron) runs; ``None``
            runs from scratch (``--state``).
        lock_timeout: Seconds to wait for another run's lock on the state (``--lock-timeout``).
        rebuild: Discard the state and build it anew, e.g. after changing
            ``--num-perm`` (``--rebuild``).

    Raises:
        ConfigError: when a value is out of range.
    """

    globs: tuple[str, ...] = DEFAULT_GLOBS
    id_field: str = "id"
    text_field: str = "text"
    shingle_size: int = 5
    num_perm: int = 256
    seed: int = 1
    lsh_threshold: float = 0.15
    jaccard: float = 0.5
    containment: float = 0.5
    min_shared: int = 8
    max_bytes: int = 16 * 1024 * 1024
    follow_links: bool = False
    jobs: int = 0
    engine: str = field(default="local", compare=False)
    scheduler: str | None = field(default=None, compare=False)
    force: bool = field(default=False, compare=False)
    state: str | None = field(default=None, compare=False)
    lock_timeout: float = field(default=0.0, compare=False)
    rebuild: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.globs or any(not g for g in self.globs):
            problems.append("--glob needs at least one non-empty pattern")
        if not self.id_field or not self.text_field:
            problems.append("--id-field and --text-field must not be empty")
        if self.id_field == self.text_field:
            problems.append(f"--id-field and --text-field are both {self.id_field!r}")
        if not 1 <= self.shingle_size <= 20:
            problems.append(f"--shingle-size must be 1..20, got {self.shingle_size}")
        if not 16 <= self.num_perm <= 1024:
            problems.append(f"--num-perm must be 16..1024, got {self.num_perm}")
        for name in ("lsh_threshold", "jaccard", "containment"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                problems.append(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
        if self.lsh_threshold > min(self.jaccard, self.containment):
            problems.append(
                f"--lsh-threshold {self.lsh_threshold} is above --jaccard/--containment: "
                "the index would drop pairs that verification accepts"
            )
        if self.min_shared < 1:
            problems.append(f"--min-shared must be >= 1, got {self.min_shared}")
        if not 0 <= self.seed < 1 << 32:  # numpy's seeds (datasketch's permutations)
            problems.append(f"--seed must be 0..{(1 << 32) - 1}, got {self.seed}")
        if not 1 <= self.max_bytes <= MAX_BYTES:  # a size in the run's int64 columns
            problems.append(f"--max-bytes must be 1..{MAX_BYTES}, got {self.max_bytes}")
        if not 0 <= self.jobs <= MAX_JOBS:
            problems.append(f"--jobs must be 0..{MAX_JOBS}, got {self.jobs}")
        if self.engine not in ENGINES:
            problems.append(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.scheduler is not None and self.engine != "dask":
            problems.append("--scheduler needs --engine dask")
        if self.state is not None and self.engine != "local":
            problems.append("--state runs on one machine: cron mode does not take --engine dask")
        if not self.lock_timeout >= 0:  # NaN too: a wait that never ends
            problems.append(f"--lock-timeout must be >= 0, got {self.lock_timeout}")
        if self.rebuild and self.state is None:
            problems.append("--rebuild needs --state")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def workers(self) -> int:
        """The number of processes ``jobs`` asks for."""
        return self.jobs or os.cpu_count() or 1

    def as_dict(self) -> dict[str, Any]:
        """The options that shape results, for ``summary.json`` (``jobs``/``force`` do not)."""
        values = asdict(self)
        for run_option in ("jobs", "engine", "scheduler", "force", "state", "lock_timeout", "rebuild"):
            values.pop(run_option)
        values["globs"] = list(self.globs)
        return values

    def stamp(self) -> dict[str, Any]:
        """What a state's stored signatures and verdicts depend on (a state built otherwise is refused)."""
        from dedup import normalize, quality
        from dedup.signatures import scheme_stamp

        # The globs only decide which files are seen: a file they drop is recorded
        # gone, one they add is new. The other options change what a stored
        # document is, so they are stamped (a change needs --rebuild).
        options = self.as_dict()
        options.pop("globs")
        return {
            **scheme_stamp(num_perm=self.num_perm, seed=self.seed, shingle_size=self.shingle_size),
            "normalization": normalize.NORMALIZATION_VERSION,
            "scoring": quality.SCORING_VERSION,
            "options": options,
        }
