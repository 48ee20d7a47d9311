"""Errors the library raises; the CLI turns them into ``Error: ...`` and an exit code.

Problems with a single document (empty, binary, undecodable, malformed JSONL line, ...)
are *not* exceptions: they become a manifest record with a ``status`` so that nothing
vanishes and one bad file never stops a nightly run. Exceptions are for problems that
make the whole run meaningless. Each carries ``.path``, the file or directory it is
about, when there is one::

    DedupError                  base class; catch this to catch everything below
    ├── ConfigError             invalid or conflicting options (CLI exit 2, a usage error)
    ├── InputError              an INPUT does not exist or is neither a directory nor a file
    │   ├── InputChangedError   an input file changed while the run was reading it
    │   └── NoDocumentsError    the INPUTs hold no readable document at all
    ├── OutputError             OUT is not empty (without --force) or cannot be written
    ├── EngineError             a worker process died (killed, out of memory), or the Dask cluster
    │                           (``--engine dask``) is unreachable, runs other code, or lost the
    │                           workers a task was tried on
    └── StateError              the --state directory cannot be used
        ├── StateLockedError    another run holds the state's lock (CLI exit 3)
        └── StateMismatchError  the state was built with other signature parameters
"""

from __future__ import annotations

import os


class DedupError(Exception):
    """Base class of every error dedup raises on purpose.

    Args:
        message: the whole sentence the CLI prints after ``Error:``.
        path: the file or directory the error is about, if any.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = path


class ConfigError(DedupError):
    """An option is out of range, or two options conflict."""


class InputError(DedupError):
    """An INPUT argument cannot be used at all."""


class InputChangedError(InputError):
    """A file's bytes changed between the two reads of one run (someone is writing to it)."""


class NoDocumentsError(InputError):
    """Nothing was read: no file matched the globs, or every record was skipped (a wrong --text-field)."""


class OutputError(DedupError):
    """The output directory cannot be used or written."""


class EngineError(DedupError):
    """The workers cannot finish: a forked one died, or ``--engine dask``'s were not reached, run
    another dedup, or were lost too often."""


class StateError(DedupError):
    """The persistent state (``--state``) cannot be opened, read or written."""


class StateLockedError(StateError):
    """Another run holds the lock (of the state, or of OUT) and did not release it within ``--lock-timeout``.

    ``.pid`` is the holder's process id, when it wrote one.
    """

    def __init__(
        self, message: str, *, path: str | os.PathLike[str] | None = None, pid: int | None = None
    ) -> None:
        super().__init__(message, path=path)
        self.pid = pid


class StateMismatchError(StateError):
    """The state's signatures were made with other parameters; ``--rebuild`` starts it anew."""
