"""The workdir's file contract: what ``count`` writes and ``train`` reads.

A counted WORKDIR holds (docs/formats.md):

- ``runs/<group-key>/``: one group of inputs' counts, ``NNNNN/part-XXXXX.parquet``
  per run and partition, and ``input.json`` (written last) describing the
  inputs they cover (``runs.py``);
- ``shards/part-XXXXX.parquet``: every word's total count, one file per
  partition;
- ``vocab.parquet``: the words with count >= min-count, most frequent first;
- ``count.json``: the manifest, written last and atomically: it alone marks
  the workdir as counted;
- ``encoded/<key>/``: encodings of the corpus made by ``train`` (``encode.py``).

This module knows these names and the vocabulary's schema, reads and writes
the vocabulary and the manifest, and clears an old count. The counting pass
(``counter.py``), the encoder, the trainer and the preflight all go through it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write
from .errors import InputDataError, MissingInputError, write_failed

COUNT_FORMAT = "bigw2v-count"
COUNT_VERSION = 1
MANIFEST_NAME = "count.json"
VOCAB_NAME = "vocab.parquet"
RUNS_DIR = "runs"
SHARDS_DIR = "shards"
ENCODED_DIR = "encoded"
ENCODED_META = "encoded.json"  # written last in an encoding: marks it finished
INPUT_RECORD = "input.json"

VOCAB_SCHEMA = pa.schema([("word", pa.string()), ("count", pa.int64())])

_NOT_COUNTED = "{} is not a counted workdir: run `bigw2v count` first"


def part_name(partition: int) -> str:
    """File name of a partition in a run or in ``shards/``."""
    return f"part-{partition:05d}.parquet"


def encoding_dir(workdir: str, key: str) -> str:
    """Where the encoding with ``key`` lives (``encode.encoding_key``)."""
    return os.path.join(workdir, ENCODED_DIR, key)


def listdir(path: str) -> list[str]:
    """Sorted names in ``path`` that are not hidden; [] for a missing directory."""
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except FileNotFoundError:
        return []


def npy_header(dtype, shape) -> bytes:
    """The header of a C-ordered ``.npy`` file of ``dtype`` and ``shape`` (the bytes that
    precede its data), for files written a block at a time rather than by ``np.save``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": tuple(shape)})
    return header.getvalue()


def write_parquet(table: pa.Table, sink) -> None:
    """Write a (word, count) table as Parquet to ``sink`` (a path or a stream)."""
    # The words of a run, shard or vocabulary are unique: a dictionary page
    # would only cost time and space.
    pq.write_table(table, sink, use_dictionary=False)


def write_parquet_atomic(table: pa.Table, path: str) -> None:
    """Write a Parquet file atomically (see ``atomic.atomic_write``)."""
    with atomic_write(path) as f:
        write_parquet(table, f)


def write_vocab(path: str, words, counts) -> None:
    """Write a vocabulary file (columns word: string, count: int64) atomically.

    ``words`` and ``counts`` are written in the order given.
    """
    table = pa.table([pa.array(list(words), pa.string()),
                      pa.array(np.asarray(counts, dtype=np.int64))], schema=VOCAB_SCHEMA)
    try:
        write_parquet_atomic(table, path)
    except OSError as exc:
        raise write_failed(f"cannot write {path}", exc) from None


def read_manifest(workdir: str) -> dict:
    """The manifest of a counted workdir (raises if the count is absent or unfinished)."""
    path = os.path.join(workdir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        raise MissingInputError(_NOT_COUNTED.format(workdir)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path} is corrupt ({exc}): run `bigw2v count` again") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if (not isinstance(manifest, dict) or manifest.get("format") != COUNT_FORMAT
            or not isinstance(manifest.get("inputs"), list)
            or not isinstance(manifest.get("totals"), dict)):
        raise InputDataError(f"{path} is not a bigw2v count manifest: run `bigw2v count` again")
    if manifest.get("version") != COUNT_VERSION:
        raise InputDataError(f"{path} has version {manifest.get('version')}, this bigw2v reads "
                             f"version {COUNT_VERSION}: run `bigw2v count` again")
    return manifest


def old_manifest(workdir: str) -> dict | None:
    """The manifest of an earlier count in ``workdir``, or None if there is no usable one."""
    try:
        return read_manifest(workdir)
    except (MissingInputError, InputDataError):
        return None


def read_vocab(workdir_or_file: str) -> tuple[list[str], np.ndarray]:
    """(words, counts int64) from a counted workdir or from a vocab.parquet file."""
    if os.path.isdir(workdir_or_file):
        read_manifest(workdir_or_file)  # only a finished count has a valid vocabulary
        path = os.path.join(workdir_or_file, VOCAB_NAME)
    else:
        path = workdir_or_file
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise MissingInputError(f"no such vocabulary file: {path}") from None
    except (OSError, pa.ArrowException) as exc:
        raise InputDataError(f"{path} is not a readable vocabulary ({exc})") from None
    if ("word" not in table.column_names or "count" not in table.column_names
            or not pa.types.is_string(table.schema.field("word").type)
            or not pa.types.is_integer(table.schema.field("count").type)):
        raise InputDataError(
            f"{path} is not a vocabulary: it needs columns word (string) and count (integer)")
    words = table.column("word").to_pylist()
    counts = table.column("count").to_numpy().astype(np.int64, copy=False)
    return words, counts


def clear_old_count(workdir: str, keep_runs: set[str], drop_encodings: bool) -> None:
    """Remove what a previous count left, manifest first, except the runs in ``keep_runs``.

    ``drop_encodings``: the inputs changed, so no cached encoding can be used again.
    """
    try:
        probe = tempfile.TemporaryFile(dir=workdir)
        probe.close()
    except OSError as exc:
        raise write_failed(f"cannot write to workdir {workdir}", exc) from None
    try:
        # The manifest goes first: from here on the workdir reads as not counted.
        for name in (MANIFEST_NAME, VOCAB_NAME):
            try:
                os.unlink(os.path.join(workdir, name))
            except FileNotFoundError:
                pass
        runs_root = os.path.join(workdir, RUNS_DIR)
        for key in listdir(runs_root):
            if key not in keep_runs:
                shutil.rmtree(os.path.join(runs_root, key))
        for name in (SHARDS_DIR,) + ((ENCODED_DIR,) if drop_encodings else ()):
            if os.path.isdir(os.path.join(workdir, name)):
                shutil.rmtree(os.path.join(workdir, name))
    except OSError as exc:
        raise write_failed(f"cannot clear the old count in {workdir}", exc) from None
