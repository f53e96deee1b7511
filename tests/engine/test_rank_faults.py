import os
import socket
import subprocess
import sys

from synco.engine import rank_faults


def test_a_rank_whose_process_ends_just_after_its_connection_closed_is_named(monkeypatch):
    """The surviving rank sees the closed connection before the dying process is marked ended: it looks again
    for a moment instead of calling the rank unreachable."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    host = socket.gethostname()
    monkeypatch.setattr(rank_faults, "_PROCESSES", [(host, os.getpid()), (host, child.pid)])
    err = RuntimeError("[gloo] Connection closed by peer")
    try:
        assert rank_faults.is_collective_failure(err)
        assert rank_faults.describe_failure(err, wait=0) == (
            "another rank stopped or became unreachable, so the distributed run cannot go on")
        said = rank_faults.describe_failure(err, wait=10)
        assert said == f"rank 1 (process {child.pid} on {host}) stopped, so the distributed run cannot go on"
    finally:
        child.wait()


def test_a_timeout_with_every_process_alive_names_the_setting(monkeypatch):
    host = socket.gethostname()
    monkeypatch.setattr(rank_faults, "_PROCESSES", [(host, os.getpid()), (host, os.getppid())])
    monkeypatch.setattr(rank_faults, "_TIMEOUT", [30])
    said = rank_faults.describe_failure(RuntimeError("Socket Timeout"), wait=0.1)
    assert said.startswith("a collective operation waited longer than trainer.collective_timeout=30 s")
