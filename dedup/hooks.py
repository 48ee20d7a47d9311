"""The two callbacks a run takes: ``progress`` for a display, ``checkpoint`` for the crash tests."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int | None], None]  # stage, done, total (None: not known)
Checkpoint = Callable[[str], None]  # called where a crash must be survivable; the tests kill there


def no_checkpoint(name: str) -> None:
    """The checkpoint of a run that nothing watches."""
