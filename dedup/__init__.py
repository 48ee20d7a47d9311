"""dedup: find near-duplicate scraped articles, keep the cleanest copy, record why.

The pipeline, one module per stage::

    readers -> pass1 (normalize, signatures, quality) -> index
            -> pass2 (cluster, quality, canonical) -> records -> manifest, copies

``pipeline.run`` orders them, in worker processes (``parallel``), with cron
mode (``incremental``) as a filter in front; ``cli`` is a thin click layer over it.
"""

__version__ = "0.1.0"

from dedup.config import Config
from dedup.errors import ConfigError, DedupError, InputError, OutputError
from dedup.pipeline import RunResult, run

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
