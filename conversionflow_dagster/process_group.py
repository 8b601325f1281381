"""Run a long-lived program (``dagster dev``) so that one signal stops all of it.

``dagster dev`` starts a webserver, a daemon and a code server; it shuts them all down on
SIGINT but not on SIGTERM, and a program started in the background of a script inherits an
ignored SIGINT. So the program runs in its own process group with SIGINT restored, every
SIGINT, SIGTERM or SIGHUP sent to us is passed on as SIGINT, and whatever of the group is
still alive when we leave is terminated, then killed: the port is free when we return.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

GRACE_S = 20.0  # for the program to stop after SIGINT, then again after SIGTERM
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _restore_sigint() -> None:  # runs in the child, before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _stop_group(group: int) -> None:
    """SIGINT is already on its way; escalate to SIGTERM, then SIGKILL, until nothing is left."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + GRACE_S
        while _alive(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _alive(group):
            return
        _signal_group(group, signum)


def run_process_group(command: Sequence[str], cwd: Path) -> int:
    """Run ``command`` in its own process group until it exits or we are told to stop."""
    child = subprocess.Popen(
        list(command), cwd=cwd, start_new_session=True, preexec_fn=_restore_sigint
    )
    stopping = False

    def forward(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        _signal_group(child.pid, signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        code = child.wait()
    finally:
        _signal_group(child.pid, signal.SIGINT)
        _stop_group(child.pid)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopping else code
