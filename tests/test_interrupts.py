"""Ctrl-C and SIGTERM are never lost, wherever in Python code they land."""

import subprocess
import sys

from conftest import ROOT

LOST_IN_A_FINALISER = """
import os, signal, sys, time
sys.path.insert(0, {src!r})
from tssweep import interrupts
interrupts.install()

class Finalised:
    def __del__(self):  # Python ignores what a finaliser raises, and prints it
        os.kill(os.getpid(), signal.{name})
        time.sleep(0.01)

try:
    item = Finalised()
    del item
    time.sleep(2)
    print("lost")
except KeyboardInterrupt as err:
    print("interrupted:", err, interrupts.signal_name())
"""


def test_a_signal_that_lands_in_a_finaliser_is_delivered_again():
    # as SQLAlchemy's registry cleanup once swallowed a search's Ctrl-C
    for name in ("SIGINT", "SIGTERM"):
        done = subprocess.run([sys.executable, "-c", LOST_IN_A_FINALISER.format(src=str(ROOT / "src"), name=name)],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout.strip() == f"interrupted: received {name} {name}", done.stdout + done.stderr
        assert "Exception ignored" not in done.stderr
