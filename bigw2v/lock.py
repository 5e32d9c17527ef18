"""One writer per directory: an advisory lock file held for as long as a run writes.

``hold(directory, what)`` takes ``directory/.lock`` with ``fcntl.flock``. The
kernel drops a flock when its holder exits, however it exits (kill -9, a
reboot empties the lock table), so a lock left by a dead process never blocks
anyone: there is no stale-lock cleanup to get wrong. The file is deleted only
by its holder, and only with the directory it made (``remove_empty_directory``:
a rejected ``train`` leaves no empty MODELDIR behind); a process that locked
the file just as it was deleted sees that the path no longer names its file
and starts again, so two processes never hold two different files. It holds the
current holder's pid, host, start time and command only so the refusal message
can name them.

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

from .errors import LockedError, write_failed

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
    while True:
        try:
            os.makedirs(directory, exist_ok=True)
            # O_CLOEXEC (Python's default): worker processes never inherit the lock.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_failed(f"cannot create the lock file {path}", e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise LockedError(f"{directory} is in use by {holder}: try again when it is done") \
                from None
        except OSError:
            os.close(fd)
            raise
        if _still_named(fd, path):
            break
        os.close(fd)  # its holder deleted the file (and maybe the directory): again
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "argv": sys.argv, "time": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _still_named(fd, path):
    """Whether ``path`` still names the file open as ``fd`` (its holder may have deleted it)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def remove_empty_directory(directory):
    """Delete ``directory`` if it holds nothing but its lock; call while holding the lock.

    For a command that made the directory and then failed before writing
    anything in it. Returns whether the directory is gone.
    """
    try:
        if os.listdir(directory) != [LOCK_NAME]:
            return False
        os.unlink(os.path.join(directory, LOCK_NAME))
        os.rmdir(directory)
        return True
    except OSError:  # another process got in, or we may not: the directory stays
        return False
