"""Which process runs a job. The kernel reuses pids, so a job's process is its pid plus the
process's start time (field 22 of /proc/<pid>/stat) and a fingerprint of its command line;
a job is alive only while all three match, and only a verified process is ever signalled.
Without /proc the pid alone is checked."""

from __future__ import annotations

import hashlib
import os
import signal
import time


def proc_available() -> bool:
    return os.path.exists("/proc/self/stat")


def proc_identity(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, command-line fingerprint) of a process, from /proc; None when
    there is no such process, no /proc, or no command line to read (a process in the middle of
    exec or of exiting shows an empty one)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        # the command name (field 2) may hold spaces and ')': count fields after its last ')'
        after_comm = stat.rsplit(b")", 1)[1].split()
        start_ticks = int(after_comm[19])  # field 22 = 3 + 19
    except (OSError, IndexError, ValueError):
        return None
    return (start_ticks, hashlib.sha256(cmdline).hexdigest()[:32]) if cmdline else None


def identity(pid: int) -> dict:
    """The jobs-row fields that identify process `pid` (identity NULL where /proc cannot tell)."""
    found = proc_identity(pid)
    return {"pid": pid, "proc_start_ticks": found[0] if found else None,
            "proc_cmdline_sha": found[1] if found else None}


def identity_of_child(pid: int, timeout_s: float = 5.0) -> dict:
    """identity of a process just spawned. Popen returns when exec closes the child's
    close-on-exec pipe, a moment before the kernel has set up the new command line (empty till
    then), so wait for it. A child that dies first is recorded by pid alone (and then found
    dead); the child records its own identity again when it takes the job."""
    deadline = time.monotonic() + timeout_s
    while proc_available() and proc_identity(pid) is None and pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    return identity(pid)


def pid_running(pid: int) -> bool:
    """Some process (not a zombie) has this pid; which one, only /proc can tell."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def alive(job: dict) -> bool:
    """Whether the job's process is still running: its pid, start time and command line all
    match a live process. Rows without an identity (no /proc when recorded, or recorded before
    identities were) and hosts without /proc fall back to the pid alone."""
    pid = job.get("pid")
    if not pid or not pid_running(pid):
        return False
    if job.get("proc_start_ticks") is None or not proc_available():
        return True
    return proc_identity(pid) == (job["proc_start_ticks"], job["proc_cmdline_sha"])


def signal_verified(job: dict, sig: int) -> bool:
    """Send `sig` to the job's process only if it still is that process. Through a pidfd where
    the OS has them: the check and the signal then address the same process even if the pid
    is reused in between. True when sent."""
    pid = job["pid"]
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd here, or no such process (then alive says so)
        fd = None
    try:
        if not alive(job):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd is not None:
            os.close(fd)
