"""Stopping the child processes the benchmarks start (servers, workers)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM every child first, so they shut down gracefully and in parallel, then wait for
    each; one that does not exit within ``timeout`` seconds is killed, so none is left behind."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
