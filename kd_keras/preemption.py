"""SIGTERM and SIGINT while a model trains: the first asks training to stop at the next
batch boundary, after a backup it can resume from (backup.TrainingBackup), and the run
ends with a line saying so; a second signal ends the process at once (its files are
written atomically, so nothing is half-written).  Outside training the signals keep
their usual effect."""

from __future__ import annotations

import signal
import threading
from typing import Dict, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preemption:
    """A context in which the first SIGTERM / SIGINT is remembered, not acted on.

    Attributes:
        received: the first signal's name ("SIGTERM"), or None.
    """

    def __init__(self):
        self.received: Optional[str] = None
        self._previous: Dict = {}

    def __enter__(self) -> "Preemption":
        if threading.current_thread() is threading.main_thread():  # where signals land
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._remember)
        return self

    def _remember(self, number, frame) -> None:
        self.received = signal.Signals(number).name
        for other in SIGNALS:  # a second signal ends the process at once
            signal.signal(other, signal.SIG_DFL)

    def __exit__(self, *exc_info) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}
