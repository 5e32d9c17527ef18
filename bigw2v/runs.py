"""Runs: counts spilled to disk, their records, and merging them into shards.

A *run* is one word table written out: ``runs/<group-key>/NNNNN/part-XXXXX.parquet``,
its words cut into ``partitions`` parts by a stable hash
(``wordtable.partition_of``). Runs are kept per group of inputs, with an
``input.json`` record written last (``write_group_record``), which is what
lets a later count reuse a group whose inputs did not change
(``read_group_records``, ``reusable_groups``) and recount only the others.

Merging is per partition (``merge_partition``): the runs' rows of one
partition summed by word into ``shards/part-XXXXX.parquet``, so memory is one
partition at a time, never the whole vocabulary. Every function here takes
its state explicitly, so an engine can merge each partition as its own task.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import corpus as corpus_io
from .atomic import atomic_write, write_json
from .wordtable import WordTable, partition_of
from .workdir import (INPUT_RECORD, RUNS_DIR, SHARDS_DIR, VOCAB_SCHEMA, listdir,
                            part_name, write_parquet_atomic)

PARTITIONS = 16
# Recorded with every run: runs partitioned by another hash (CRC-32 in earlier
# versions) cannot be merged with these and are counted again.
PARTITION_HASH = "chunk64-fmix64-high32"

# What an input's record holds, with types (manifest and input.json alike).
RECORD_FIELDS = (("path", str), ("size", int), ("mtime_ns", int), ("tokens", int),
                 ("sentences", int))


# ---------------------------------------------------------------- names


def input_key(path: str) -> str:
    """A short stable name for an input's run directory (a hash of its path)."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def group_key(paths: list[str]) -> str:
    """The run directory name of inputs counted together: ``input_key`` for one input."""
    if len(paths) == 1:
        return input_key(paths[0])
    return "group-" + input_key("\n".join(paths))


# ---------------------------------------------------------------- writing runs


def sum_by_word(table: pa.Table) -> pa.Table:
    """Rows with equal words merged, counts summed (order unspecified)."""
    summed = table.group_by("word").aggregate([("count", "sum")])
    return pa.table([summed.column("word"), summed.column("count_sum").cast(pa.int64())],
                    schema=VOCAB_SCHEMA)


def table_partitions(table: WordTable, partitions: int) -> Iterator[tuple[int, pa.Table]]:
    """A table's words, canonicalised, as (partition, (word, count) rows) per non-empty partition."""
    words, counts, hashes = table.word_counts()
    if len(words) == 0:
        return
    parts = partition_of(hashes, partitions)
    if partitions <= 1 << 16:
        parts = parts.astype(np.uint16)  # numpy sorts 16-bit keys by radix: 4x faster
    order = np.argsort(parts, kind="stable")
    rows = pa.table([words.take(pa.array(order)).cast(pa.string()), pa.array(counts[order])],
                    schema=VOCAB_SCHEMA)
    bounds = np.searchsorted(parts[order], np.arange(partitions + 1))
    for p in range(partitions):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        if hi > lo:
            yield p, rows.slice(lo, hi - lo)


class WrittenRuns:
    """Run files this process wrote, kept in memory (up to ``max_rows`` rows) for the merge.

    The merge would otherwise read back, right away, what was just written;
    with one input counted in one run that is the whole vocabulary.
    Thread-safe; past ``max_rows`` further files are simply not kept.
    """

    def __init__(self, max_rows: int):
        self.max_rows = max_rows
        self.rows = 0
        self._tables: dict[str, pa.Table] = {}
        self._lock = threading.Lock()

    def add(self, path: str, table: pa.Table) -> None:
        with self._lock:
            if self.rows + table.num_rows <= self.max_rows:
                self._tables[path] = table
                self.rows += table.num_rows

    def read(self, path: str) -> pa.Table:
        """The run file's table: the kept one, else read from disk."""
        with self._lock:
            table = self._tables.get(path)
        return table if table is not None else pq.read_table(path)


class RunWriter:
    """Spills word tables as runs into one run directory (thread-safe).

    ``runs`` is how many runs were written to ``run_dir``; ``written``, if
    given, keeps the tables written for ``merge_runs``. A run's partition
    files are written by up to ``writers`` threads at once (Parquet encoding
    and the file writes release the GIL).
    """

    def __init__(self, run_dir: str, partitions: int, written: WrittenRuns | None = None,
                 writers: int = 1):
        self.run_dir = run_dir
        self.partitions = partitions
        self.written = written
        self.writers = max(1, writers)
        self.runs = 0
        self._lock = threading.Lock()

    def spill(self, table: WordTable) -> None:
        """Write the table's counts as the next run and empty the table."""
        if not len(table):
            return
        with self._lock:
            number = self.runs
            self.runs += 1
        directory = os.path.join(self.run_dir, f"{number:05d}")
        os.makedirs(directory, exist_ok=True)
        parts = [(os.path.join(directory, part_name(p)), part)
                 for p, part in table_partitions(table, self.partitions)]

        def write(path_part):
            path, part = path_part
            write_parquet_atomic(part, path)
            if self.written is not None:
                self.written.add(path, part)

        if self.writers == 1 or len(parts) == 1:
            for path_part in parts:
                write(path_part)
        else:
            # Its own threads: a counting thread that spills must not wait on
            # the pool it runs in.
            with ThreadPoolExecutor(min(self.writers, len(parts)),
                                    thread_name_prefix="spill") as pool:
                for _ in pool.map(write, parts):
                    pass
        table.clear()


# ---------------------------------------------------------------- group records


def write_group_record(run_dir: str, records: list[dict], partitions: int,
                       source_options: dict | None = None) -> None:
    """Mark ``run_dir`` complete: the records of the inputs its runs cover.

    Written last: a run directory with it can be reused by a later
    incremental count; one without it (a killed count) is recounted.
    ``source_options``: how record inputs' text was found (text column, field).
    """
    os.makedirs(run_dir, exist_ok=True)  # inputs without words have no runs
    write_json(os.path.join(run_dir, INPUT_RECORD),
               {"inputs": records, "partitions": partitions, "partition_hash": PARTITION_HASH,
                "max_word_bytes": corpus_io.MAX_WORD_BYTES,
                **{k: v for k, v in (source_options or {}).items() if v is not None}})


def _valid_records(rec, partitions: int, source_options: dict) -> list[dict] | None:
    """The input records of one ``input.json``, or None if it cannot be reused."""
    if (not isinstance(rec, dict) or rec.get("partitions") != partitions
            or rec.get("partition_hash") != PARTITION_HASH
            or rec.get("max_word_bytes") != corpus_io.MAX_WORD_BYTES
            or any(rec.get(k) != v for k, v in source_options.items())):
        return None
    members = rec.get("inputs", [rec])
    if isinstance(members, list) and members and all(
            isinstance(m, dict) and all(isinstance(m.get(k), t) for k, t in RECORD_FIELDS)
            for m in members):
        return [{k: m[k] for k, _ in RECORD_FIELDS} for m in members]
    return None


def read_group_records(runs_root: str, partitions: int,
                       source_options: dict | None = None) -> dict[str, list[dict]]:
    """{run directory: records of its inputs} for every complete run directory.

    Only directories counted with these ``partitions``, this
    ``PARTITION_HASH``, this ``MAX_WORD_BYTES`` and these ``source_options``
    count; unreadable records are ignored (their
    directories are recounted). A record of the one-input layout of earlier
    versions (the record's fields at the top) is read as a group of one.
    """
    found = {}
    for key in listdir(runs_root):
        try:
            with open(os.path.join(runs_root, key, INPUT_RECORD), encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        members = _valid_records(rec, partitions, source_options or {})
        if members is not None:
            found[key] = members
    return found


def reusable_groups(inputs: list[corpus_io.InputFile], groups: dict[str, list[dict]]
                    ) -> tuple[set[str], dict[str, dict]]:
    """The run directories still valid, and {path: record} of the inputs they cover.

    A directory is valid when every input in it is still named and unchanged:
    same path, size and mtime (what make, rsync and the encoder's own check
    rely on too). Standard input is new text every time.
    """
    current = {inp.path: inp for inp in inputs if inp.path != "-"}
    keep: set[str] = set()
    reused: dict[str, dict] = {}
    for key, members in sorted(groups.items()):
        valid = all(m["path"] in current and m["path"] not in reused
                    and current[m["path"]].size == m["size"]
                    and current[m["path"]].mtime_ns == m["mtime_ns"] for m in members)
        if valid:
            keep.add(key)
            reused.update((m["path"], m) for m in members)
    return keep, reused


# ---------------------------------------------------------------- merging


class MergedPartition(NamedTuple):
    """One partition after merging: its words kept for the vocabulary, and its totals."""

    kept: pa.Table      # (word, count) rows with count >= min_count, unsorted
    distinct: int       # distinct words in the partition
    tokens: int         # summed counts


def run_dirs(runs_root: str) -> list[str]:
    """Every run directory under ``runs_root`` (a workdir's runs/), in a stable order."""
    return sorted(os.path.join(runs_root, key, run)
                  for key in listdir(runs_root)
                  for run in listdir(os.path.join(runs_root, key))
                  if os.path.isdir(os.path.join(runs_root, key, run)))


def partition_files(runs: list[str], partition: int) -> list[str]:
    """The files of the run directories ``runs`` that hold words of ``partition``."""
    files = (os.path.join(d, part_name(partition)) for d in runs)
    return [f for f in files if os.path.exists(f)]


def merge_partition(files: list[str], shard: str, min_count: int,
                    read: Callable[[str], pa.Table] = pq.read_table) -> MergedPartition:
    """Sum the runs ``files`` of one partition into the shard file ``shard``.

    ``read`` reads a run file (``WrittenRuns.read`` serves ones still in memory).
    """
    if len(files) == 1:
        # A run's words are unique already: the shard is the run itself.
        merged = read(files[0])
        link_or_copy(files[0], shard)
    else:
        merged = sum_tables([read(f) for f in files])
        write_parquet_atomic(merged, shard)
    return summarise(merged, min_count)


def sum_tables(tables: list[pa.Table]) -> pa.Table:
    """One partition's run tables summed by word (a single run is returned as it is)."""
    if not tables:
        return VOCAB_SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    return sum_by_word(pa.concat_tables(tables))


def summarise(merged: pa.Table, min_count: int) -> MergedPartition:
    """A merged partition's words kept for the vocabulary, and its totals."""
    tokens = int(pc.sum(merged.column("count")).as_py() or 0)
    kept = merged.filter(pc.greater_equal(merged.column("count"), min_count))
    return MergedPartition(kept, merged.num_rows, tokens)


def gather(merged: list[MergedPartition]) -> tuple[pa.Table, int, int]:
    """(words >= min_count of every partition, distinct words, tokens)."""
    vocab = pa.concat_tables([m.kept for m in merged]) if merged else VOCAB_SCHEMA.empty_table()
    return vocab, sum(m.distinct for m in merged), sum(m.tokens for m in merged)


def merge_runs(workdir: str, partitions: int, min_count: int,
               written: WrittenRuns | None = None) -> tuple[pa.Table, int, int]:
    """Merge every run into ``shards/``; return (words >= min_count, distinct words, tokens).

    One partition is in memory at a time, plus the kept words so far (and
    the run tables ``written`` holds, which are not read again).
    """
    read = written.read if written is not None else pq.read_table
    shards = os.path.join(workdir, SHARDS_DIR)
    os.makedirs(shards, exist_ok=True)
    runs = run_dirs(os.path.join(workdir, RUNS_DIR))
    merged = []
    for p in range(partitions):
        files = partition_files(runs, p)
        if files:
            merged.append(merge_partition(files, os.path.join(shards, part_name(p)),
                                          min_count, read))
    return gather(merged)


def link_or_copy(source: str, target: str) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where links are not possible).

    Safe because run files are never changed in place: a recount deletes
    them and writes new ones, which leaves the shard's link intact.
    """
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    try:
        os.link(source, target)
    except OSError:
        with atomic_write(target) as f, open(source, "rb") as run:
            shutil.copyfileobj(run, f)


def sort_vocab(table: pa.Table) -> pa.Table:
    """Most frequent first; equal counts by word in UTF-8 byte order."""
    return table.sort_by([("count", "descending"), ("word", "ascending")])
