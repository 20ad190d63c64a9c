"""SIGTERM / SIGINT while training (issue #29, item 5): the first is remembered (training
stops at the next batch, after a backup: tests/test_resume.py reruns such a run and
compares it with an uninterrupted one); a second ends the process at once."""

import os
import signal
import subprocess
import sys
import time

from kd_keras import preemption
from test_end_to_end import REPO

SLEEPER = """
import time
from kd_keras import preemption
with preemption.Preemption() as stop:
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
        if stop.received:
            print("received", stop.received, flush=True)
"""


def test_the_first_signal_is_remembered_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with preemption.Preemption() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert stop.received == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second: at once
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_second_signal_ends_the_process_at_once():
    process = subprocess.Popen([sys.executable, "-c", SLEEPER], cwd=REPO, text=True,
                               stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGINT)
    assert process.stdout.readline().strip() == "received SIGINT"  # remembered, not acted on
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
