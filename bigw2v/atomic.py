"""Writing files so that a crash never leaves a half-written file under the real name."""

import contextlib
import json
import os
import tempfile


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
