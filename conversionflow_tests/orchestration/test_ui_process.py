"""One SIGTERM to `conversionflow ui` stops every process it started and frees the port."""

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from conversionflow_tests.conftest import free_port, start_ui, wait_for_ui


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), whatever group or session it moved to."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ignore_sigint() -> None:  # as for a program started in the background of a script
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_sigterm_to_the_ui_stops_every_process_and_frees_the_port(tmp_path):
    port = free_port()
    ui = start_ui(port, tmp_path, preexec_fn=ignore_sigint)
    started: set[int] = set()
    try:
        wait_for_ui(port, ui)
        started = descendants(ui.pid)
        assert len(started) >= 3  # dagster dev, its webserver and its daemon at least

        ui.send_signal(signal.SIGTERM)  # the top pid only, as `kill <pid>` does
        assert ui.wait(timeout=120) == 0
        deadline = time.monotonic() + 30
        while any(alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in started if alive(p)]
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    finally:
        if ui.poll() is None:
            ui.kill()
        for pid in [p for p in started if alive(p)]:  # orphans no longer descend from ui
            os.kill(pid, signal.SIGKILL)
