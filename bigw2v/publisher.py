"""Publishing a finished model under a stable name: an atomically switched symbolic link.

A model directory is only ever written by the run that trains it, and is
marked finished by its ``model.json``, written last. A consumer that wants
"the current model" reads a link, e.g. ``models/latest -> 2024-05-01T0300``:

- ``publish`` checks the model is finished and loadable, makes a new link
  under a temporary name and renames it over LINK. rename(2) is atomic, so
  a reader resolving LINK gets the old target or the new one, never neither.
- ``vectors.load`` resolves the link once and reads every file from the
  directory it resolved to, so a switch in the middle of a load cannot mix
  two models.
- An old model directory stays intact until someone deletes it; the cron
  wrapper keeps a few and never deletes the one LINK points to.
"""

import os

from .errors import UsageError, write_failed
from .vectors import load_model_dir as load


def publish(modeldir, link):
    """Point ``link`` at the finished model ``modeldir``; return a summary dict."""
    vectors = load(modeldir)  # MissingInputError / InputDataError unless finished
    if os.path.lexists(link) and not os.path.islink(link):
        raise UsageError(f"{link} exists and is not a symbolic link: choose another name")
    target = os.path.realpath(modeldir)
    link_dir = os.path.dirname(os.path.abspath(link))
    # A relative target when the model sits beside the link, so the tree can move.
    if os.path.dirname(target) == os.path.realpath(link_dir):
        target_text = os.path.basename(target)
    else:
        target_text = target
    temp = os.path.join(link_dir, f".{os.path.basename(link)}.{os.getpid()}.tmp")
    try:
        if os.path.lexists(temp):
            os.remove(temp)
        os.symlink(target_text, temp)
        os.replace(temp, link)
        fd = os.open(link_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        if os.path.lexists(temp):
            os.remove(temp)
        raise write_failed(f"cannot publish {modeldir} as {link}", e) from None
    return {"link": os.path.abspath(link), "model": target, "vocab_size": len(vectors),
            "dim": vectors.dim}
