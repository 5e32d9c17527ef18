"""Checkpoints: a consistent copy of the weights plus the progress that goes with them.

The kernels update the working weights in the training process's memory
(copy-on-write maps of MODELDIR's weight files: nothing is written back while
training). A checkpoint is their copy on disk, taken between two batches
(when no kernel runs):

    MODELDIR/checkpoint-NNNNNN/
        vectors.npy, output_vectors.npy, hs_vectors.npy   (those the run has)
        state.json     progress, settings, sizes and SHA-256 of every file

Writing one never touches the previous one: the copy goes to a hidden
``.checkpoint-NNNNNN.tmp`` directory, every file and the directory are
fsynced, it is renamed into place (atomic), the parent directory is fsynced,
and only then are older checkpoints deleted. A kill at any instant leaves at
least one complete checkpoint once the first has been written; leftover
``.tmp`` directories are ignored and removed by the next run.

Reading verifies sizes and checksums; a damaged checkpoint is skipped in
favour of an older complete one when there is one (a kill between the rename
and the deletion leaves two), else it is an error that says what is wrong.
"""

import hashlib
import json
import logging
import os
import re
import shutil

import numpy as np

from .atomic import write_json
from .errors import InputDataError, write_failed
from .workdir import npy_header

log = logging.getLogger("bigw2v")

STATE_FORMAT = "bigw2v-checkpoint"
STATE_VERSION = 1
STATE_NAME = "state.json"
COPY_BLOCK = 16 * 2**20
_NAME = re.compile(r"^checkpoint-(\d{6,})$")


def checkpoint_name(number):
    return f"checkpoint-{number:06d}"


def is_checkpoint_name(name):
    """Whether ``name`` is a complete checkpoint's directory name."""
    return _NAME.match(name) is not None


def fsync_path(path):
    """fsync a file (its data) or a directory (a rename or unlink in it) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_file(source, target):
    """Copy ``source`` to ``target`` (fsynced); return its (size, sha256 hex)."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        while True:
            block = src.read(COPY_BLOCK)
            if not block:
                break
            digest.update(block)
            dst.write(block)
            size += len(block)
        dst.flush()
        os.fsync(dst.fileno())
    return size, digest.hexdigest()


def write_matrix(matrix, path):
    """Write ``matrix`` as a ``.npy`` file at ``path`` (fsynced); return its (size, sha256 hex).

    The working weights live in the training process's memory (see
    ``trainer._open_weights``), so checkpoints and the finished model are
    written from it, a block of rows at a time.
    """
    header = npy_header(matrix.dtype, matrix.shape)
    digest = hashlib.sha256(header)
    size = len(header)
    rows = max(1, COPY_BLOCK // max(1, matrix.strides[0]))
    with open(path, "wb") as f:
        f.write(header)
        for start in range(0, matrix.shape[0], rows):
            block = np.ascontiguousarray(matrix[start:start + rows]).data
            digest.update(block)
            f.write(block)
            size += block.nbytes
        f.flush()
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def file_digest(path):
    """(size, sha256 hex) of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(COPY_BLOCK)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def list_checkpoints(modeldir):
    """Complete-looking checkpoint directories, newest first: [(number, path)]."""
    try:
        names = os.listdir(modeldir)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = _NAME.match(name)
        if m and os.path.isdir(os.path.join(modeldir, name)):
            found.append((int(m.group(1)), os.path.join(modeldir, name)))
    return sorted(found, reverse=True)


def remove_leftovers(modeldir):
    """Delete unfinished checkpoint copies a killed run left behind."""
    for name in os.listdir(modeldir):
        if name.startswith(".checkpoint-") and name.endswith(".tmp"):
            shutil.rmtree(os.path.join(modeldir, name), ignore_errors=True)


def remove_all(modeldir):
    """Delete every checkpoint, complete or not (a finished or restarted run)."""
    remove_leftovers(modeldir)
    for _, path in list_checkpoints(modeldir):
        shutil.rmtree(path, ignore_errors=True)


def write(modeldir, number, matrices, state):
    """Write checkpoint ``number`` of the weights (``matrices``: file name -> array) and ``state``.

    ``state`` is a JSON-able dict of progress; the file records are added
    here. Older checkpoints are deleted once this one is in place. Returns
    the checkpoint's path.
    """
    final = os.path.join(modeldir, checkpoint_name(number))
    temp = os.path.join(modeldir, "." + checkpoint_name(number) + ".tmp")
    try:
        shutil.rmtree(temp, ignore_errors=True)
        os.makedirs(temp)
        files = {}
        for name, matrix in matrices.items():
            size, sha = write_matrix(matrix, os.path.join(temp, name))
            files[name] = {"size": size, "sha256": sha}
        record = {"format": STATE_FORMAT, "version": STATE_VERSION, "number": number,
                  **state, "files": files}
        write_json(os.path.join(temp, STATE_NAME), record)
        fsync_path(temp)
        os.replace(temp, final)
        fsync_path(modeldir)
    except OSError as e:
        shutil.rmtree(temp, ignore_errors=True)
        raise write_failed(f"cannot write checkpoint {final}", e) from None
    # Only now, with the new copy durable, may the old one go.
    for older, path in list_checkpoints(modeldir):
        if older < number:
            shutil.rmtree(path, ignore_errors=True)
    return final


def verify(path):
    """The state of the checkpoint at ``path``, checked file by file.

    Raises InputDataError naming what is wrong (missing, truncated, checksum).
    """
    state_path = os.path.join(path, STATE_NAME)
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise InputDataError(f"checkpoint {path} has no {STATE_NAME}") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputDataError(f"checkpoint {path}: {STATE_NAME} is unreadable ({e})") from None
    if (not isinstance(state, dict) or state.get("format") != STATE_FORMAT
            or state.get("version") != STATE_VERSION or not isinstance(state.get("files"), dict)):
        raise InputDataError(f"checkpoint {path}: {STATE_NAME} is not a bigw2v checkpoint state")
    for name, want in state["files"].items():
        file_path = os.path.join(path, name)
        try:
            size = os.path.getsize(file_path)
        except OSError:
            raise InputDataError(f"checkpoint {path}: {name} is missing") from None
        if size != want["size"]:
            raise InputDataError(f"checkpoint {path}: {name} is truncated or damaged "
                                 f"({size} bytes, {want['size']} expected)")
        if file_digest(file_path)[1] != want["sha256"]:
            raise InputDataError(f"checkpoint {path}: {name} is damaged (checksum mismatch)")
    return state


def latest_good(modeldir):
    """(path, state) of the newest checkpoint that verifies, or None if there is none.

    Damaged ones are logged and skipped when an older good one exists; if
    every checkpoint is damaged, the newest one's error is raised.
    """
    first_error = None
    for _, path in list_checkpoints(modeldir):
        try:
            state = verify(path)
        except InputDataError as e:
            log.warning("%s; trying an older checkpoint", e)
            first_error = first_error or e
            continue
        return path, state
    if first_error is not None:
        raise InputDataError(f"{first_error}: no usable checkpoint is left; "
                             "pass --force to start the run over")
    return None


def restore(path, state, modeldir):
    """Copy a verified checkpoint's weight files over the working files in MODELDIR.

    Each file is copied to a temporary name and renamed, so a reader holding
    the old working file open (a memory map) keeps a valid file.
    """
    try:
        for name in state["files"]:
            temp = os.path.join(modeldir, f".{name}.restore.tmp")
            copy_file(os.path.join(path, name), temp)
            os.replace(temp, os.path.join(modeldir, name))
        fsync_path(modeldir)
    except OSError as e:
        raise write_failed(f"cannot restore the weights from {path}", e) from None
