"""dedup: find near-duplicate scraped articles, keep the cleanest copy, record why.

The pipeline, one module per stage::

    readers -> pass1 (normalize, signatures, quality) -> index
            -> pass2 (cluster, quality, canonical) -> records -> manifest, copies

``pipeline.run`` orders them, in worker processes (``parallel``), with cron
mode (``incremental``) as a filter in front; ``cli`` is a thin click layer over it.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from dedup.config import Config
from dedup.errors import ConfigError, DedupError, InputError, OutputError

if TYPE_CHECKING:
    from dedup.pipeline import RunResult, run


def __getattr__(name: str) -> Any:
    """``run`` and ``RunResult`` load the pipeline (numpy, scipy, numba) when first asked for.

    ``dedup --help`` then answers without importing them (~2 s).
    """
    if name in ("run", "RunResult"):
        from dedup import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'dedup' has no attribute {name!r}")


__all__ = [
    "Config",
    "ConfigError",
    "DedupError",
    "InputError",
    "OutputError",
    "RunResult",
    "__version__",
    "run",
]
