"""Writing files so that a crash never leaves a half-written file under the real name."""

import contextlib
import json
import os
import tempfile


def _umask_from_proc():
    """The process's umask from /proc/self/status (Linux 4.7+), or None."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


# Where /proc cannot tell, the umask as it was at import: reading it means
# setting it (os.umask), which is safe only while no other thread creates files.
_UMASK_AT_IMPORT = _umask_from_proc()
if _UMASK_AT_IMPORT is None:
    _UMASK_AT_IMPORT = os.umask(0o022)
    os.umask(_UMASK_AT_IMPORT)


def file_mode():
    """The mode a new file gets from open(2): 0o666 less the umask (what the .npy files get)."""
    umask = _umask_from_proc()
    return 0o666 & ~(_UMASK_AT_IMPORT if umask is None else umask)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a hidden temporary file beside ``path``; on success fsync and rename it into place.

    On any error the temporary file is removed and ``path`` keeps its old content (or stays
    absent), so readers see either the old file or the complete new one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            # mkstemp makes the file 0600; readers of a published model may be other users.
            os.fchmod(f.fileno(), file_mode())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
