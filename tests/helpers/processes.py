"""Stopping a server a test started: a signal, a bounded wait, then kill."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, sig: int, timeout_s: float) -> int | None:
    """Send ``sig`` and wait up to ``timeout_s``; its exit status, or None if it had to be killed."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
