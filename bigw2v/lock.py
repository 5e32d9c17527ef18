"""One writer per directory: an advisory lock file held for as long as a run writes.

``hold(directory, what)`` takes ``directory/.lock`` with ``fcntl.flock``. The
kernel drops a flock when its holder exits, however it exits (kill -9, a
reboot empties the lock table), so a lock left by a dead process never blocks
anyone: there is no stale-lock cleanup to get wrong. The file itself is never
deleted (deleting a lock file lets two processes lock two different inodes);
it holds the current holder's pid, host, start time and command only so the
refusal message can name them.

A second process does not wait: it gets ``LockedError`` (exit 75, EX_TEMPFAIL)
at once, which tells cron "try again later".
"""

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone

from .errors import LockedError, OutputError

LOCK_NAME = ".lock"


def describe_holder(text):
    """A human description of the holder from the lock file's content."""
    try:
        info = json.loads(text)
        return (f"pid {info['pid']} on {info['host']} ({info['what']}, started "
                f"{info['started']})")
    except (ValueError, KeyError, TypeError):
        # The holder may be between taking the lock and writing its name.
        return "another process"


@contextlib.contextmanager
def hold(directory, what):
    """Hold the lock of ``directory`` (created if missing) for the ``with`` block.

    ``what`` says what the holder is doing (e.g. "bigw2v train"), for the message
    a refused process prints.
    """
    path = os.path.join(directory, LOCK_NAME)
    try:
        os.makedirs(directory, exist_ok=True)
        # O_CLOEXEC (Python's default): worker processes never inherit the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"cannot create the lock file {path}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            raise LockedError(f"{directory} is in use by {holder}: try again when it is done") \
                from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "argv": sys.argv, "time": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
