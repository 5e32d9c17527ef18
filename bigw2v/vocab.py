"""Pass 1: exact word counts in Parquet shards, and the vocabulary read back.

Counting is exact (nothing is pruned) and its memory is bounded by
``spill_words``, not by how many distinct words the corpus has:

1. Each input is read in blocks (``corpus.iter_blocks``); blocks are packed
   into tasks of about one block (a large input: one block a task; small
   files: many to a task). Counting threads each fill their own
   ``wordtable.WordTable`` (a Numba tokenizer and hash table that releases
   the GIL), one task at a time, for the current group of inputs (a large
   input alone, or small files together: ``plan_groups``).
2. When a table holds more than its share of ``spill_words`` distinct words,
   and at the end of the group, it is written out as a *run*:
   ``WORKDIR/runs/<group-key>/<run-no>/part-XXXXX.parquet``, the words cut
   into ``partitions`` parts by a stable hash (``wordtable.partition_of``:
   hash of the UTF-8 word, mixed). Runs are kept per group so a later
   incremental count can drop and recount one changed input (with the rest
   of its group, for a small file).
3. Each partition's runs are merged by summing counts into
   ``WORKDIR/shards/part-XXXXX.parquet`` (memory: one partition at a time).
4. The words with count >= min_count, sorted by count descending then word
   (UTF-8 byte order), become ``WORKDIR/vocab.parquet``.
5. ``WORKDIR/count.json``, the manifest, is written last and atomically: it
   alone marks the workdir as counted; it is removed first when counting
   starts again.

Words are stored by their canonical string (``corpus.canonical_word``);
raw words with the same canonical string are counted as one word.

Sentences: an input's sentence count is the number of its lines (text
ended by a LF, or by the end of the input) that contain at least one word.
A line may span blocks, so each block reports a ``LineTally`` of its line
edges and ``add_lines`` folds them, in input order, into the exact count.

The per-group work (``count_group``; ``count_input`` for one input) has
explicit state (the tables it fills, the runs it writes) and writes only its
own runs, so a distributed engine could run it per group and call
``merge_runs`` once all runs exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigw2v import corpus as corpus_io
from bigw2v import lock
from bigw2v.errors import InputDataError, MissingInputError, OutputError, UsageError
from bigw2v.atomic import atomic_write, write_json
from bigw2v.progress import progress_bar
from bigw2v.wordtable import WordTable, partition_of

COUNT_FORMAT = "bigw2v-count"
COUNT_VERSION = 1
MANIFEST_NAME = "count.json"
VOCAB_NAME = "vocab.parquet"
RUNS_DIR = "runs"
SHARDS_DIR = "shards"
ENCODED_DIR = "encoded"
INPUT_RECORD = "input.json"

log = logging.getLogger("bigw2v")

SPILL_WORDS = 4_000_000
# Rows a counting table starts with (Counters).
INITIAL_TABLE_ROWS = 1 << 18
PARTITIONS = 16
# Recorded with every run: runs partitioned by another hash (CRC-32 in earlier
# versions) cannot be merged with these and are counted again.
PARTITION_HASH = "chunk64-fmix64-high32"
# Regular files under SMALL_INPUT_BYTES are counted in groups of up to
# GROUP_BYTES / GROUP_FILES that share one run directory (see plan_groups).
SMALL_INPUT_BYTES = 4 * 2**20
GROUP_BYTES = 64 * 2**20
GROUP_FILES = 10_000

VOCAB_SCHEMA = pa.schema([("word", pa.string()), ("count", pa.int64())])


# ---------------------------------------------------------------- one block


class LineTally(NamedTuple):
    """Where a block's lines start and end, enough to count sentences exactly.

    ``first``: the text before the block's first LF (all of it if it has no
    LF) has a word. ``middle``: lines that both start after a LF and end
    with a LF inside the block and have a word. ``last``: the text after the
    block's last LF has a word (False without a LF). ``newline``: the block
    has a LF.
    """

    first: bool
    middle: int
    last: bool
    newline: bool


def count_pieces(pieces: list[bytes], table: WordTable) -> list[tuple[int, LineTally]]:
    """Count a task's blocks (of one input or of several small ones) into ``table``.

    Returns (tokens, LineTally) per piece, so each input's tokens and
    sentences stay exact. The table is the explicit state: any thread (or
    process, or machine) can count any task into a table of its own.
    """
    tallies = []
    for piece in pieces:
        tokens, first, middle, last, newline = table.count_block(piece)
        tallies.append((tokens, LineTally(first, middle, last, newline)))
    return tallies


def add_lines(open_line: bool, tally: LineTally) -> tuple[int, bool]:
    """Fold one block's tally into the line state of its input.

    ``open_line`` says whether the line still open before this block has a
    word. Returns (sentences completed in this block, the new open_line).
    At the end of the input an open line with a word is one more sentence.
    """
    if not tally.newline:
        return 0, open_line or tally.first
    return int(open_line or tally.first) + tally.middle, tally.last


# ---------------------------------------------------------------- tables


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


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.parquet"


# ---------------------------------------------------------------- files


def _write_table_atomic(table: pa.Table, path: str) -> None:
    """Write a Parquet file atomically (see ``atomic.atomic_write``)."""
    with atomic_write(path) as f:
        # The words of a run, shard or vocabulary are unique: a dictionary
        # page would only cost time and space.
        pq.write_table(table, f, use_dictionary=False)


def write_vocab(path: str, words, counts) -> None:
    """Write a vocabulary file (columns word: string, count: int64) atomically.

    ``words`` and ``counts`` are written in the order given.
    """
    table = pa.table([pa.array(list(words), pa.string()), pa.array(np.asarray(counts, dtype=np.int64))],
                     schema=VOCAB_SCHEMA)
    try:
        _write_table_atomic(table, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_manifest(workdir: str) -> dict:
    """The manifest of a counted workdir (raises if the count is absent or unfinished)."""
    path = os.path.join(workdir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise MissingInputError(f"{workdir} is not a counted workdir: run `bigw2v count` first") from None
    except NotADirectoryError:
        raise MissingInputError(f"{workdir} is not a counted workdir: run `bigw2v count` first") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path} is corrupt ({exc}): run `bigw2v count` again") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if (not isinstance(manifest, dict) or manifest.get("format") != COUNT_FORMAT
            or not isinstance(manifest.get("inputs"), list) or not isinstance(manifest.get("totals"), dict)):
        raise InputDataError(f"{path} is not a bigw2v count manifest: run `bigw2v count` again")
    if manifest.get("version") != COUNT_VERSION:
        raise InputDataError(f"{path} has version {manifest.get('version')}, this bigw2v reads "
                             f"version {COUNT_VERSION}: run `bigw2v count` again")
    return manifest


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
        raise InputDataError(f"{path} is not a vocabulary: it needs columns word (string) and count (integer)")
    words = table.column("word").to_pylist()
    counts = table.column("count").to_numpy().astype(np.int64, copy=False)
    return words, counts


# ---------------------------------------------------------------- one group of inputs


def input_key(path: str) -> str:
    """A short stable name for an input's run directory (a hash of its path)."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def group_key(paths: list[str]) -> str:
    """The run directory name of inputs counted together: ``input_key`` for one input."""
    if len(paths) == 1:
        return input_key(paths[0])
    return "group-" + input_key("\n".join(paths))


def plan_groups(inputs: list[corpus_io.InputFile], small_input_bytes: int = SMALL_INPUT_BYTES,
                group_bytes: int = GROUP_BYTES, group_files: int = GROUP_FILES
                ) -> list[list[corpus_io.InputFile]]:
    """Cut the inputs to count into groups that share one set of runs.

    A regular file under ``small_input_bytes`` joins the current group of
    small files, which closes at ``group_bytes`` or ``group_files``; any other
    input (large, standard input, a pipe) is a group of its own. Ten thousand
    small files then make one run directory instead of ten thousand: fewer
    files to write and merge, one pool task per ~block of text instead of
    one per file. The price: a changed small input is recounted with its
    group, at most ``group_bytes`` of reading.
    """
    groups: list[list[corpus_io.InputFile]] = []
    batch: list[corpus_io.InputFile] = []
    batch_bytes = 0
    for inp in inputs:
        if inp.path == "-" or inp.size >= small_input_bytes or not os.path.isfile(inp.path):
            groups.append([inp])
            continue
        if batch and (batch_bytes + inp.size > group_bytes or len(batch) >= group_files):
            groups.append(batch)
            batch, batch_bytes = [], 0
        batch.append(inp)
        batch_bytes += inp.size
    if batch:
        groups.append(batch)
    return groups


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
            _write_table_atomic(part, path)
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


class Counters:
    """The word tables of the counting threads, and the threads.

    ``threads`` tables, one per thread: a task takes a free table, counts
    into it and gives it back, so no two threads ever write the same table.
    A table that passes ``spill_words // threads`` distinct words is spilled
    as a run right away, which bounds memory at about ``spill_words`` words
    (``WordTable`` costs about 40 bytes a word plus the words' bytes) plus
    ``2 * threads`` blocks of text in flight.
    """

    def __init__(self, threads: int, spill_words: int):
        self.threads = threads
        self.spill_at = max(1, spill_words // threads)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        # Room from the start for a corpus of a few hundred thousand distinct
        # words (about 10 MB a table): no growing, rehashing and copying while
        # the first blocks are counted. Bigger vocabularies grow from there.
        rows = min(self.spill_at, INITIAL_TABLE_ROWS)
        for _ in range(threads):
            self._free.put(WordTable(rows=rows, arena_bytes=8 * rows))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="count") if threads > 1 else None

    def _count(self, pieces: list[bytes], runs: RunWriter) -> list[tuple[int, LineTally]]:
        table = self._free.get()
        try:
            tallies = count_pieces(pieces, table)
            if len(table) > self.spill_at:
                runs.spill(table)
            return tallies
        finally:
            self._free.put(table)

    def map(self, tasks: Iterable, runs: RunWriter) -> Iterator:
        """(tag, tallies) for each (tag, pieces) task, in order, spilling into ``runs``.

        At most ``2 * threads`` tasks are pending: memory stays a few blocks
        however fast the reader is; results come back in submission order,
        as the line tally needs.
        """
        if self._pool is None:
            for tag, pieces in tasks:
                yield tag, self._count(pieces, runs)
            return
        pending: deque = deque()
        try:
            for tag, pieces in tasks:
                pending.append((tag, self._pool.submit(self._count, pieces, runs)))
                while len(pending) >= 2 * self.threads:
                    tag, future = pending.popleft()
                    yield tag, future.result()
            while pending:
                tag, future = pending.popleft()
                yield tag, future.result()
        finally:
            for _, future in pending:
                future.cancel()
            for _, future in pending:
                if not future.cancelled():
                    future.exception()  # wait: a running task still holds a table

    def spill_all(self, runs: RunWriter) -> None:
        """Spill every table (call when no task is pending): the group's last runs.

        Tables that fit together under the spill limit are merged first: one
        run instead of one per thread, fewer files to write and merge.
        """
        tables = [self._free.get() for _ in range(self.threads)]
        try:
            first = tables[0]
            for table in tables[1:]:
                if len(first) + len(table) <= self.spill_at * self.threads:
                    first.absorb(table)
                    table.clear()
                else:
                    runs.spill(table)
            runs.spill(first)
        finally:
            for table in tables:
                self._free.put(table)

    def close(self) -> None:
        """Stop the threads and let the tables go (the merge that follows needs their memory)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._free = queue.SimpleQueue()


@dataclass
class InputTally:
    """One input's tokens and sentences, folded from its pieces in input order.

    ``open_line``: the line not yet ended by a LF has a word.
    """

    tokens: int = 0
    sentences: int = 0
    open_line: bool = False

    def add(self, tokens: int, tally: LineTally) -> None:
        self.tokens += tokens
        done, self.open_line = add_lines(self.open_line, tally)
        self.sentences += done

    def record(self, inp: corpus_io.InputFile) -> dict:
        """The input's manifest record; an open line with a word is its last sentence."""
        return {"path": inp.path, "size": inp.size, "mtime_ns": inp.mtime_ns,
                "tokens": self.tokens, "sentences": self.sentences + int(self.open_line)}


def _tasks(inputs: list[corpus_io.InputFile], block_bytes: int,
           on_bytes: Callable[[int], None] | None) -> Iterator[tuple[list[int], list[bytes]]]:
    """The group's blocks packed into tasks of about ``block_bytes``: (input indices, pieces).

    A large input gives one block per task; small inputs share a task. A
    piece never holds text of two inputs: a sentence never spans two files.
    """
    members: list[int] = []
    pieces: list[bytes] = []
    size = 0
    done = 0
    for m, inp in enumerate(inputs):
        for block, read in corpus_io.input_blocks(inp, block_bytes):
            if pieces and size + len(block) > block_bytes:
                yield members, pieces
                members, pieces, size = [], [], 0
            members.append(m)
            pieces.append(block)
            size += len(block)
            if size >= block_bytes // 2:
                yield members, pieces
                members, pieces, size = [], [], 0
            if on_bytes is not None:
                on_bytes(done + read)
        done += inp.size
    if pieces:
        yield members, pieces


def count_group(inputs: list[corpus_io.InputFile], runs_root: str, *, partitions: int = PARTITIONS,
                spill_words: int = SPILL_WORDS, block_bytes: int = corpus_io.BLOCK_BYTES,
                counters: Counters | None = None,
                on_bytes: Callable[[int], None] | None = None,
                written: WrittenRuns | None = None) -> list[dict]:
    """Count inputs together into runs under ``runs_root/<group-key>/``; return their records.

    ``counters``: the tables and threads to count with (default: one table,
    this thread; ``spill_words`` applies only then). ``on_bytes(n)`` is told
    the raw bytes of the group's files read so far, for progress.
    ``written`` keeps the run tables in memory for ``merge_runs``.
    """
    own = counters is None
    if own:
        counters = Counters(1, spill_words)
    run_dir = os.path.join(runs_root, group_key([inp.path for inp in inputs]))
    shutil.rmtree(run_dir, ignore_errors=True)
    runs = RunWriter(run_dir, partitions, written, writers=counters.threads)
    tallies = [InputTally() for _ in inputs]
    try:
        for members, piece_tallies in counters.map(_tasks(inputs, block_bytes, on_bytes), runs):
            for m, (tokens, tally) in zip(members, piece_tallies):
                tallies[m].add(tokens, tally)
        counters.spill_all(runs)
    finally:
        if own:
            counters.close()
    records = [t.record(inp) for t, inp in zip(tallies, inputs)]
    # Written last: a run directory with it is complete and can be reused by a later
    # incremental count; one without it (a killed count) is recounted.
    os.makedirs(run_dir, exist_ok=True)  # inputs without words have no runs
    write_json(os.path.join(run_dir, INPUT_RECORD),
               {"inputs": records, "partitions": partitions, "partition_hash": PARTITION_HASH,
                "max_word_bytes": corpus_io.MAX_WORD_BYTES})
    return records


def count_input(inp: corpus_io.InputFile, runs_root: str, **options) -> dict:
    """Count one input into runs under ``runs_root/<input-key>/``; return its record.

    The per-input unit of work (options as ``count_group``).
    """
    return count_group([inp], runs_root, **options)[0]


_RECORD_FIELDS = (("path", str), ("size", int), ("mtime_ns", int), ("tokens", int), ("sentences", int))


def read_group_records(runs_root: str, partitions: int) -> dict[str, list[dict]]:
    """{run directory: records of its inputs} for every complete run directory.

    Only directories counted with these ``partitions``, this
    ``PARTITION_HASH`` and this ``MAX_WORD_BYTES`` count; unreadable records are ignored (their
    directories are recounted). A record of the one-input layout of earlier
    versions (the record's fields at the top) is read as a group of one.
    """
    found = {}
    for key in _listdir(runs_root):
        try:
            with open(os.path.join(runs_root, key, INPUT_RECORD), encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if (not isinstance(rec, dict) or rec.get("partitions") != partitions
                or rec.get("partition_hash") != PARTITION_HASH
                or rec.get("max_word_bytes") != corpus_io.MAX_WORD_BYTES):
            continue
        members = rec.get("inputs", [rec])
        if isinstance(members, list) and members and all(
                isinstance(m, dict) and all(isinstance(m.get(k), t) for k, t in _RECORD_FIELDS)
                for m in members):
            found[key] = [{k: m[k] for k, _ in _RECORD_FIELDS} for m in members]
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


# ---------------------------------------------------------------- all inputs


def merge_runs(workdir: str, partitions: int, min_count: int,
               written: WrittenRuns | None = None) -> tuple[pa.Table, int, int]:
    """Merge every run into ``shards/``; return (words >= min_count, distinct words, tokens).

    One partition is in memory at a time, plus the kept words so far (and
    the run tables ``written`` holds, which are not read again).
    """
    read = written.read if written is not None else pq.read_table
    runs_root = os.path.join(workdir, RUNS_DIR)
    shards = os.path.join(workdir, SHARDS_DIR)
    os.makedirs(shards, exist_ok=True)
    run_dirs = sorted(os.path.join(runs_root, key, run)
                      for key in _listdir(runs_root) for run in _listdir(os.path.join(runs_root, key))
                      if os.path.isdir(os.path.join(runs_root, key, run)))
    kept = []
    distinct = 0
    tokens = 0
    for p in range(partitions):
        files = [f for f in (os.path.join(d, part_name(p)) for d in run_dirs) if os.path.exists(f)]
        if not files:
            continue
        shard = os.path.join(shards, part_name(p))
        if len(files) == 1:
            # A run's words are unique already: the shard is the run itself.
            merged = read(files[0])
            _link_or_copy(files[0], shard)
        else:
            merged = sum_by_word(pa.concat_tables([read(f) for f in files]))
            _write_table_atomic(merged, shard)
        distinct += merged.num_rows
        tokens += int(pc.sum(merged.column("count")).as_py() or 0)
        kept.append(merged.filter(pc.greater_equal(merged.column("count"), min_count)))
    vocab = pa.concat_tables(kept) if kept else VOCAB_SCHEMA.empty_table()
    return vocab, distinct, tokens


def _link_or_copy(source: str, target: str) -> None:
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


def _listdir(path: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except FileNotFoundError:
        return []


def sort_vocab(table: pa.Table) -> pa.Table:
    """Most frequent first; equal counts by word in UTF-8 byte order."""
    return table.sort_by([("count", "descending"), ("word", "ascending")])


def _prepare_workdir(workdir: str, keep_runs: set[str], drop_encodings: bool) -> None:
    """Remove what a previous count left, manifest first, except the runs in ``keep_runs``.

    ``drop_encodings``: the inputs changed, so no cached encoding can be used again.
    """
    try:
        probe = tempfile.TemporaryFile(dir=workdir)
        probe.close()
    except OSError as exc:
        raise OutputError(f"cannot write to workdir {workdir}: {exc.strerror or exc}") from None
    try:
        # The manifest goes first: from here on the workdir reads as not counted.
        for name in (MANIFEST_NAME, VOCAB_NAME):
            try:
                os.unlink(os.path.join(workdir, name))
            except FileNotFoundError:
                pass
        runs_root = os.path.join(workdir, RUNS_DIR)
        for key in _listdir(runs_root):
            if key not in keep_runs:
                shutil.rmtree(os.path.join(runs_root, key))
        for name in (SHARDS_DIR,) + ((ENCODED_DIR,) if drop_encodings else ()):
            if os.path.isdir(os.path.join(workdir, name)):
                shutil.rmtree(os.path.join(workdir, name))
    except OSError as exc:
        raise OutputError(f"cannot clear the old count in {workdir}: {exc.strerror or exc}") from None


def _old_manifest(workdir: str) -> dict | None:
    try:
        return read_manifest(workdir)
    except (MissingInputError, InputDataError):
        return None


def _check_settings(min_count, threads, spill_words, partitions, block_bytes,
                    small_input_bytes) -> int:
    def whole(value, name, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UsageError(f"{name} must be a whole number >= {low}, not {value!r}")

    whole(min_count, "min-count", 1)
    if threads is None:
        threads = os.cpu_count() or 1
    whole(threads, "threads", 1)
    whole(spill_words, "spill-words", 1)
    whole(partitions, "partitions", 1)
    whole(block_bytes, "block size", 1)
    whole(small_input_bytes, "small-input size", 0)
    return int(threads)


def _describe_corpus(inputs: list[corpus_io.InputFile]) -> str:
    if len(inputs) == 1:
        return "standard input" if inputs[0].path == "-" else inputs[0].path
    return f"the corpus ({len(inputs)} inputs)"


def count(corpus: str | list[str], workdir: str, min_count: int = 5, threads: int | None = None,
          progress: bool = True, spill_words: int = SPILL_WORDS, partitions: int = PARTITIONS,
          block_bytes: int = corpus_io.BLOCK_BYTES, small_input_bytes: int = SMALL_INPUT_BYTES,
          preflight: bool = True) -> dict:
    """Count every word of the corpus into ``workdir``; return the manifest.

    ``corpus``: files, directories or ``-`` (see ``corpus.expand_inputs``).
    Writes runs/, shards/, vocab.parquet and, last, count.json (module
    docstring). ``threads`` None means all cores; 1 counts in the calling thread.
    ``small_input_bytes``: files under this size are counted in groups (0:
    every input alone). ``preflight``: refuse to start when the workdir's
    disk cannot hold the counts (``preflight.check_count``).
    """
    threads = _check_settings(min_count, threads, spill_words, partitions, block_bytes,
                              small_input_bytes)
    inputs = corpus_io.expand_inputs(corpus)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise OutputError(f"cannot write to workdir {workdir}: it is a file")
    with lock.hold(workdir, "bigw2v count"):
        return _count_locked(inputs, workdir, min_count, threads, progress, spill_words,
                             partitions, block_bytes, small_input_bytes, preflight)


def _count_locked(inputs, workdir, min_count, threads, progress, spill_words, partitions,
                  block_bytes, small_input_bytes, preflight) -> dict:
    started = time.time()
    runs_root = os.path.join(workdir, RUNS_DIR)
    # Incremental: inputs whose complete runs still describe them are not read again.
    on_disk = read_group_records(runs_root, partitions)
    keep_runs, reused = reusable_groups(inputs, on_disk)
    old = _old_manifest(workdir)
    if (old is not None and len(reused) == len(inputs)
            and [r["path"] for r in old["inputs"]] == [inp.path for inp in inputs]
            and old["settings"].get("min_count") == min_count
            and old["settings"].get("partitions") == partitions):
        log.info("%s is up to date: no input is new or changed", workdir)
        return {**old, "last_run": {"reused_inputs": len(inputs), "counted_inputs": 0,
                                    "dropped_inputs": 0, "up_to_date": True}}
    named = {inp.path for inp in inputs}
    dropped = {m["path"] for members in on_disk.values() for m in members} - named
    to_count = [inp for inp in inputs if inp.path not in reused]
    if reused or dropped:
        log.info("counting %d new or changed input(s), reusing the counts of %d unchanged, "
                 "dropping %d no longer named", len(to_count), len(reused), len(dropped))
    if preflight:
        from bigw2v.preflight import check_count
        check_count(workdir, to_count, runs_root, keep_runs)
    _prepare_workdir(workdir, keep_runs=keep_runs, drop_encodings=bool(to_count or dropped))

    # Standard input has no size: then the bar shows bytes without a total.
    from_stdin = any(inp.path == "-" for inp in inputs)
    bar = progress_bar(None if from_stdin else sum(inp.size for inp in to_count), "count",
                       unit="B", enabled=progress)
    counters = Counters(threads, spill_words)
    # As many words as the counting tables may hold: memory stays within the same bound.
    written = WrittenRuns(spill_words)
    counted = {}
    try:
        for group in plan_groups(to_count, small_input_bytes):
            done = bar.n

            def on_bytes(n, done=done):
                bar.update(done + n - bar.n)

            for record in count_group(group, runs_root, partitions=partitions,
                                      block_bytes=block_bytes, counters=counters,
                                      on_bytes=on_bytes, written=written):
                counted[record["path"]] = record
            bar.update(done + sum(inp.size for inp in group) - bar.n)
    except OSError as exc:
        # Reading errors are InputDataError by now; an OSError here is a write.
        raise OutputError(f"cannot write the counts in {workdir}: {exc.strerror or exc}") from None
    finally:
        counters.close()
        bar.close()
    records = [reused.get(inp.path) or counted[inp.path] for inp in inputs]

    total_tokens = sum(r["tokens"] for r in records)
    if total_tokens == 0:
        raise InputDataError(f"{_describe_corpus(inputs)} contains no words")
    try:
        vocab, distinct, counted = merge_runs(workdir, partitions, min_count, written)
    except OSError as exc:
        raise OutputError(f"cannot write the counts in {workdir}: {exc.strerror or exc}") from None
    # Every token is in exactly one run; a mismatch is a bug, not a user error.
    assert counted == total_tokens, (counted, total_tokens)
    if vocab.num_rows == 0:
        raise InputDataError(
            f"no word of {_describe_corpus(inputs)} occurs {min_count} times or more "
            f"({distinct} distinct words, {total_tokens} tokens): use a lower --min-count")
    vocab = sort_vocab(vocab)
    manifest = {
        "format": COUNT_FORMAT,
        "version": COUNT_VERSION,
        "inputs": records,
        "totals": {
            "tokens": total_tokens,
            "sentences": sum(r["sentences"] for r in records),
            "distinct_words": distinct,
            "vocab_words": vocab.num_rows,
            "vocab_tokens": int(pc.sum(vocab.column("count")).as_py()),
        },
        "settings": {"min_count": min_count, "max_word_bytes": corpus_io.MAX_WORD_BYTES,
                     "partitions": partitions},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": None,
        "last_run": {"reused_inputs": len(reused), "counted_inputs": len(to_count),
                     "dropped_inputs": len(dropped), "up_to_date": False},
    }
    try:
        _write_table_atomic(vocab, os.path.join(workdir, VOCAB_NAME))
        manifest["seconds"] = round(time.time() - started, 3)
        write_json(os.path.join(workdir, MANIFEST_NAME), manifest)
    except OSError as exc:
        raise OutputError(f"cannot write the counts in {workdir}: {exc.strerror or exc}") from None
    return manifest
