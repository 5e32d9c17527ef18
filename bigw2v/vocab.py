"""Pass 1: exact word counts in Parquet shards, and the vocabulary read back.

Counting is exact (nothing is pruned) and its memory is bounded by
``spill_words``, not by how many distinct words the corpus has:

1. Each input is read in blocks (``corpus.iter_blocks``); ``count_block``
   turns a block into a Counter of raw words. Blocks are counted in a
   process pool; the main process adds the block Counters into one Counter
   for the current input.
2. When that Counter holds more than ``spill_words`` distinct words, and at
   the end of the input, it is written out as a *run*:
   ``WORKDIR/runs/<input-key>/<run-no>/part-XXXXX.parquet``, the words cut
   into ``partitions`` parts by a stable hash (CRC-32 of the UTF-8 word).
   Runs are kept per input so a later incremental count can drop and recount
   one changed input.
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

The per-input work (``count_input``) has explicit state and writes only
its own runs, so a distributed engine could run it per input and call
``merge_runs`` and ``write_final_vocab`` once all runs exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
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
PARTITIONS = 16

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


def _has_word(segment: bytes) -> bool:
    # Only space, tab, CR separate words here: 0x0b and 0x0c are word bytes.
    return bool(segment.strip(b" \t\r"))


def count_block(block: bytes) -> tuple[Counter, int, LineTally]:
    """Count one block: (Counter of raw words, number of tokens, its LineTally).

    Pure, so it can run in any process on any block.
    """
    words = corpus_io.split_words(block)
    counts = Counter(words)
    tokens = len(words)
    if b"\n" not in block:
        return counts, tokens, LineTally(tokens > 0, 0, False, False)
    lines = corpus_io.split_lines(block)
    middle = sum(1 for line in lines[1:-1] if _has_word(line))
    return counts, tokens, LineTally(_has_word(lines[0]), middle, _has_word(lines[-1]), True)


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


def counter_to_table(counter: Counter) -> pa.Table:
    """A (word: string, count: int64) table from raw-word counts.

    Words are canonicalised (``corpus.canonical_word``); raw words with the
    same canonical form have their counts summed. Row order is unspecified.
    """
    words: list[str] = []
    counts: list[int] = []
    odd: dict[str, int] = {}  # canonicalised by the slow path: may collide
    limit = corpus_io.MAX_WORD_BYTES
    for raw, n in counter.items():
        if len(raw) <= limit:
            try:
                words.append(raw.decode("utf-8"))
                counts.append(n)
                continue
            except UnicodeDecodeError:
                pass
        word = corpus_io.canonical_word(raw)
        odd[word] = odd.get(word, 0) + n
    table = pa.table([pa.array(words, pa.string()), pa.array(counts, pa.int64())], schema=VOCAB_SCHEMA)
    if odd:
        # A replaced or truncated word can equal a clean one; merge them.
        extra = pa.table([pa.array(list(odd), pa.string()), pa.array(list(odd.values()), pa.int64())],
                         schema=VOCAB_SCHEMA)
        table = sum_by_word(pa.concat_tables([table, extra]))
    return table


def sum_by_word(table: pa.Table) -> pa.Table:
    """Rows with equal words merged, counts summed (order unspecified)."""
    summed = table.group_by("word").aggregate([("count", "sum")])
    return pa.table([summed.column("word"), summed.column("count_sum").cast(pa.int64())],
                    schema=VOCAB_SCHEMA)


def word_partitions(words: Iterable[str], partitions: int) -> np.ndarray:
    """The partition of each word: CRC-32 of its UTF-8 bytes modulo ``partitions``.

    CRC-32 rather than ``hash()``: Python randomises string hashes per
    process, and a word must land in the same partition in every run.
    """
    crc = zlib.crc32
    return np.fromiter((crc(w.encode("utf-8")) for w in words), dtype=np.uint32) % np.uint32(partitions)


def split_partitions(table: pa.Table, partitions: int) -> Iterator[tuple[int, pa.Table]]:
    """Yield (partition, rows of that partition) for every non-empty partition."""
    if table.num_rows == 0:
        return
    parts = word_partitions(table.column("word").to_pylist(), partitions)
    order = np.argsort(parts, kind="stable")
    table = table.take(pa.array(order))
    parts = parts[order]
    bounds = np.searchsorted(parts, np.arange(partitions + 1))
    for p in range(partitions):
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        if hi > lo:
            yield p, table.slice(lo, hi - lo)


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.parquet"


# ---------------------------------------------------------------- files


def _write_table_atomic(table: pa.Table, path: str) -> None:
    """Write a Parquet file atomically (see ``atomic.atomic_write``)."""
    with atomic_write(path) as f:
        pq.write_table(table, f)


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


# ---------------------------------------------------------------- one input


def input_key(path: str) -> str:
    """A short stable name for an input's run directory (a hash of its path)."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class InputCount:
    """The running state of counting one input; everything needed to go on.

    ``counter`` holds raw-word counts not yet spilled; ``runs`` is how many
    runs were written to ``run_dir``; ``open_line`` whether the line not
    yet ended by a LF has a word.
    """

    inp: corpus_io.InputFile
    run_dir: str
    partitions: int
    spill_words: int
    counter: Counter = field(default_factory=Counter)
    tokens: int = 0
    sentences: int = 0
    open_line: bool = False
    runs: int = 0

    def add(self, block_count: tuple[Counter, int, LineTally]) -> None:
        """Add one block's ``count_block`` result; blocks must come in input order."""
        counts, tokens, tally = block_count
        self.counter.update(counts)
        self.tokens += tokens
        done, self.open_line = add_lines(self.open_line, tally)
        self.sentences += done
        if len(self.counter) > self.spill_words:
            self.spill()

    def spill(self) -> None:
        """Write the counts held in memory as the next run and forget them."""
        if not self.counter:
            return
        directory = os.path.join(self.run_dir, f"{self.runs:05d}")
        os.makedirs(directory, exist_ok=True)
        for p, part in split_partitions(counter_to_table(self.counter), self.partitions):
            _write_table_atomic(part, os.path.join(directory, part_name(p)))
        self.runs += 1
        self.counter = Counter()

    def finish(self) -> dict:
        """Spill what is left; return this input's manifest record."""
        self.sentences += int(self.open_line)
        self.open_line = False
        self.spill()
        return {"path": self.inp.path, "size": self.inp.size, "mtime_ns": self.inp.mtime_ns,
                "tokens": self.tokens, "sentences": self.sentences}


def count_input(inp: corpus_io.InputFile, runs_root: str, *, partitions: int = PARTITIONS,
                spill_words: int = SPILL_WORDS, block_bytes: int = corpus_io.BLOCK_BYTES,
                map_blocks: Callable[[Iterable[bytes]], Iterable] = None,
                on_bytes: Callable[[int], None] | None = None) -> dict:
    """Count one input into runs under ``runs_root/<input-key>/``; return its record.

    ``map_blocks`` maps the blocks to their ``count_block`` results, in order
    (default: in this process). ``on_bytes(n)`` is told the raw bytes of
    the file read so far, for progress.
    """
    if map_blocks is None:
        map_blocks = _map_here
    run_dir = os.path.join(runs_root, input_key(inp.path))
    shutil.rmtree(run_dir, ignore_errors=True)
    state = InputCount(inp, run_dir, partitions, spill_words)
    with corpus_io.open_input(inp) as stream:
        blocks = corpus_io.iter_blocks(stream, block_bytes, name=inp.path)
        for result in map_blocks(blocks):
            state.add(result)
            if on_bytes is not None:
                on_bytes(corpus_io.raw_bytes_read(stream))
    record = state.finish()
    # Written last: a run directory with it is complete and can be reused by a later
    # incremental count; one without it (a killed count) is recounted.
    os.makedirs(run_dir, exist_ok=True)  # an input without words has no runs
    write_json(os.path.join(run_dir, INPUT_RECORD),
               {**record, "partitions": partitions, "max_word_bytes": corpus_io.MAX_WORD_BYTES})
    return record


def reusable_record(inp: corpus_io.InputFile, runs_root: str, partitions: int) -> dict | None:
    """The record of ``inp``'s complete runs if they still describe the file, else None.

    An input is unchanged when its path, size and mtime are the ones counted
    (what make, rsync and the encoder's own check rely on too).
    """
    if inp.path == "-":
        return None  # standard input is new text every time
    try:
        with open(os.path.join(runs_root, input_key(inp.path), INPUT_RECORD), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    same = (rec.get("path") == inp.path and rec.get("size") == inp.size
            and rec.get("mtime_ns") == inp.mtime_ns and rec.get("partitions") == partitions
            and rec.get("max_word_bytes") == corpus_io.MAX_WORD_BYTES)
    if not same:
        return None
    return {k: rec[k] for k in ("path", "size", "mtime_ns", "tokens", "sentences")}


def _map_here(blocks: Iterable[bytes]) -> Iterator:
    return map(count_block, blocks)


def _pool_mapper(pool: ProcessPoolExecutor, in_flight: int):
    """A map_blocks that counts in ``pool`` with at most ``in_flight`` blocks pending.

    The bound keeps memory at a few blocks however fast the reader is;
    results come back in submission order, as the line tally needs.
    """

    def map_blocks(blocks: Iterable[bytes]) -> Iterator:
        pending: deque = deque()
        try:
            for block in blocks:
                pending.append(pool.submit(count_block, block))
                while len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    return map_blocks


# ---------------------------------------------------------------- all inputs


def merge_runs(workdir: str, partitions: int, min_count: int) -> tuple[pa.Table, int, int]:
    """Merge every run into ``shards/``; return (words >= min_count, distinct words, tokens).

    One partition is in memory at a time, plus the kept words so far.
    """
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
        merged = sum_by_word(pa.concat_tables([pq.read_table(f) for f in files]))
        _write_table_atomic(merged, os.path.join(shards, part_name(p)))
        distinct += merged.num_rows
        tokens += int(pc.sum(merged.column("count")).as_py() or 0)
        kept.append(merged.filter(pc.greater_equal(merged.column("count"), min_count)))
    vocab = pa.concat_tables(kept) if kept else VOCAB_SCHEMA.empty_table()
    return vocab, distinct, tokens


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


def _check_settings(min_count, threads, spill_words, partitions, block_bytes) -> int:
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
    return int(threads)


def _describe_corpus(inputs: list[corpus_io.InputFile]) -> str:
    if len(inputs) == 1:
        return "standard input" if inputs[0].path == "-" else inputs[0].path
    return f"the corpus ({len(inputs)} inputs)"


def count(corpus: str | list[str], workdir: str, min_count: int = 5, threads: int | None = None,
          progress: bool = True, spill_words: int = SPILL_WORDS, partitions: int = PARTITIONS,
          block_bytes: int = corpus_io.BLOCK_BYTES) -> dict:
    """Count every word of the corpus into ``workdir``; return the manifest.

    ``corpus``: files, directories or ``-`` (see ``corpus.expand_inputs``).
    Writes runs/, shards/, vocab.parquet and, last, count.json (module
    docstring). ``threads`` None means all cores; 1 counts in this process.
    """
    threads = _check_settings(min_count, threads, spill_words, partitions, block_bytes)
    inputs = corpus_io.expand_inputs(corpus)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise OutputError(f"cannot write to workdir {workdir}: it is a file")
    with lock.hold(workdir, "bigw2v count"):
        return _count_locked(inputs, workdir, min_count, threads, progress, spill_words,
                             partitions, block_bytes)


def _count_locked(inputs, workdir, min_count, threads, progress, spill_words, partitions,
                  block_bytes) -> dict:
    started = time.time()
    runs_root = os.path.join(workdir, RUNS_DIR)
    # Incremental: an input whose complete runs still describe it is not read again.
    reused = {}
    for inp in inputs:
        rec = reusable_record(inp, runs_root, partitions)
        if rec is not None:
            reused[inp.path] = rec
    old = _old_manifest(workdir)
    if (old is not None and len(reused) == len(inputs)
            and [r["path"] for r in old["inputs"]] == [inp.path for inp in inputs]
            and old["settings"].get("min_count") == min_count
            and old["settings"].get("partitions") == partitions):
        log.info("%s is up to date: no input is new or changed", workdir)
        return {**old, "last_run": {"reused_inputs": len(inputs), "counted_inputs": 0,
                                    "dropped_inputs": 0, "up_to_date": True}}
    named = {input_key(inp.path) for inp in inputs}
    dropped = [key for key in _listdir(runs_root) if key not in named]
    to_count = [inp for inp in inputs if inp.path not in reused]
    if reused or dropped:
        log.info("counting %d new or changed input(s), reusing the counts of %d unchanged, "
                 "dropping %d no longer named", len(to_count), len(reused), len(dropped))
    _prepare_workdir(workdir, keep_runs={input_key(p) for p in reused},
                     drop_encodings=bool(to_count or dropped))

    # Standard input has no size: then the bar shows bytes without a total.
    from_stdin = any(inp.path == "-" for inp in inputs)
    bar = progress_bar(None if from_stdin else sum(inp.size for inp in to_count), "count",
                       unit="B", enabled=progress)
    pool = None
    records = []
    try:
        map_blocks = None
        if threads > 1:
            pool = ProcessPoolExecutor(max_workers=threads, mp_context=multiprocessing.get_context("spawn"))
            map_blocks = _pool_mapper(pool, 2 * threads)
        for inp in inputs:
            if inp.path in reused:
                records.append(reused[inp.path])
                continue
            done = bar.n

            def on_bytes(n, done=done):
                bar.update(done + n - bar.n)

            records.append(count_input(inp, runs_root, partitions=partitions, spill_words=spill_words,
                                       block_bytes=block_bytes, map_blocks=map_blocks, on_bytes=on_bytes))
            if inp.size:
                bar.update(done + inp.size - bar.n)
    except OSError as exc:
        # Reading errors are InputDataError by now; an OSError here is a write.
        raise OutputError(f"cannot write the counts in {workdir}: {exc.strerror or exc}") from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()

    total_tokens = sum(r["tokens"] for r in records)
    if total_tokens == 0:
        raise InputDataError(f"{_describe_corpus(inputs)} contains no words")
    try:
        vocab, distinct, counted = merge_runs(workdir, partitions, min_count)
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
