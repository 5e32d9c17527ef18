"""Pass 1: count every word of the corpus exactly, in bounded memory.

Counting is exact (nothing is pruned) and its memory is bounded by
``spill_words``, not by how many distinct words the corpus has:

1. The inputs are cut into groups (``plan_groups``: a large input alone,
   small files together). Each group's blocks are packed into tasks of about
   one block; counting threads each fill their own ``wordtable.WordTable``
   (a Numba tokenizer and hash table that releases the GIL), one task at a
   time (``Counters``).
2. When a table holds more than its share of ``spill_words`` distinct words,
   and at the end of the group, it is written out as a *run* (``runs.py``).
3. Each partition's runs are merged into a shard, and the words with
   count >= min_count, most frequent first, become ``vocab.parquet``; the
   manifest ``count.json`` is written last (``workdir.py``).

Words are stored by their canonical string (``corpus.canonical_word``);
raw words with the same canonical string are counted as one word.

Sentences: an input's sentence count is the number of its lines (text
ended by a LF, or by the end of the input) that contain at least one word.
A line may span blocks, so each block reports a ``LineTally`` of its line
edges and ``add_lines`` folds them, in input order, into the exact count.

``count_group`` (``count_input`` for one input) is the unit of work with
explicit state (the tables it counts into, the run directory it writes), so
an engine can run it per group and then merge each partition
(``runs.merge_partition``) once all runs exist.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import corpus as corpus_io
from . import lock
from .atomic import write_json
from .errors import InputDataError, OutputError, UsageError, write_failed
from .pool import ordered_map
from .progress import progress_bar
from .runs import (PARTITIONS, RunWriter, WrittenRuns, group_key, merge_runs,
                         read_group_records, reusable_groups, sort_vocab, write_group_record)
from .normalize import check_mode
from .settings import threads_to_use
from .wordtable import WordTable
from .workdir import (COUNT_FORMAT, COUNT_VERSION, MANIFEST_NAME, RUNS_DIR, VOCAB_NAME,
                            clear_old_count, old_manifest, write_parquet_atomic)

log = logging.getLogger("bigw2v")

SPILL_WORDS = 4_000_000
# Rows a counting table starts with (Counters).
INITIAL_TABLE_ROWS = 1 << 18
# Regular files under SMALL_INPUT_BYTES are counted in groups of up to
# GROUP_BYTES / GROUP_FILES that share one run directory (see plan_groups).
SMALL_INPUT_BYTES = 4 * 2**20
GROUP_BYTES = 64 * 2**20
GROUP_FILES = 10_000


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


# ---------------------------------------------------------------- the counting threads


class Counters:
    """The word tables of the counting threads, and the threads.

    ``threads`` tables, one per thread: a task takes a free table, counts
    into it and gives it back, so no two threads ever write the same table.
    A table that passes ``spill_words // threads`` distinct words is spilled
    as a run right away, which bounds memory at about ``spill_words`` words
    (``WordTable`` costs about 40 bytes a word plus the words' bytes) plus
    ``2 * threads`` blocks of text in flight. ``normalize``: the tables
    normalise the text (``normalize.py``; one more block of memory a table).
    """

    def __init__(self, threads: int, spill_words: int, normalize: str | None = None):
        self.threads = threads
        self.spill_at = max(1, spill_words // threads)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        # Room from the start for a corpus of a few hundred thousand distinct
        # words (about 10 MB a table): no growing, rehashing and copying while
        # the first blocks are counted. Bigger vocabularies grow from there.
        rows = min(self.spill_at, INITIAL_TABLE_ROWS)
        for _ in range(threads):
            self._free.put(WordTable(rows=rows, arena_bytes=8 * rows,
                                     normalize=normalize))
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
        """(tag, tallies) for each (tag, pieces) task, in order, spilling into ``runs``."""
        return ordered_map(self._pool, lambda task: (task[0], self._count(task[1], runs)),
                           tasks, 2 * self.threads)

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


# ---------------------------------------------------------------- one group of inputs


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
                written: WrittenRuns | None = None,
                source_options: dict | None = None) -> list[dict]:
    """Count inputs together into runs under ``runs_root/<group-key>/``; return their records.

    ``counters``: the tables and threads to count with (default: one table,
    this thread; ``spill_words`` applies only then). ``on_bytes(n)`` is told
    the raw bytes of the group's files read so far, for progress.
    ``written`` keeps the run tables in memory for ``merge_runs``.
    ``source_options`` (text column and field the inputs were expanded with,
    the normalisation) are recorded with the runs: runs of other columns or
    another normalisation are not reused; the tables ``counters`` gives must
    normalise as ``source_options["normalize"]`` says.
    """
    own = counters is None
    if own:
        counters = Counters(1, spill_words, (source_options or {}).get("normalize"))
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
    write_group_record(run_dir, records, partitions, source_options)
    return records


def count_input(inp: corpus_io.InputFile, runs_root: str, **options) -> dict:
    """Count one input into runs under ``runs_root/<input-key>/``; return its record.

    The per-input unit of work (options as ``count_group``).
    """
    return count_group([inp], runs_root, **options)[0]


# ---------------------------------------------------------------- the whole corpus


@dataclass(frozen=True)
class CountSettings:
    """How a ``count`` runs; ``checked`` validates and fills in the thread count."""

    min_count: int = 5
    threads: int | None = None        # None: all cores
    spill_words: int = SPILL_WORDS
    partitions: int = PARTITIONS
    block_bytes: int = corpus_io.BLOCK_BYTES
    small_input_bytes: int = SMALL_INPUT_BYTES
    text_column: str | None = None    # Parquet / Arrow inputs (records.py; None: default rule)
    text_field: str | None = None     # JSON Lines inputs
    normalize: str | None = None      # None, "lower" or "words" (normalize.py)

    def checked(self) -> "CountSettings":
        lows = {"min_count": 1, "threads": 1, "spill_words": 1, "partitions": 1,
                "block_bytes": 1, "small_input_bytes": 0}
        threads = self.threads if self.threads is not None else os.cpu_count() or 1
        values = {**self.__dict__, "threads": threads}
        for name, low in lows.items():
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                label = {"block_bytes": "block size", "small_input_bytes": "small-input size"}.get(
                    name, name.replace("_", "-"))
                raise UsageError(f"{label} must be a whole number >= {low}, not {value!r}")
            values[name] = int(value)
        values["threads"] = threads_to_use(values["threads"], "counting")
        for name in ("text_column", "text_field"):
            if values[name] is not None and (not isinstance(values[name], str)
                                             or not values[name]):
                raise UsageError(f"{name.replace('_', '-')} must be a name, not {values[name]!r}")
        values["normalize"] = check_mode(values["normalize"])
        return CountSettings(**values)

    def source_options(self) -> dict:
        """How the words are found in the inputs: the text column or field of record
        inputs, the normalisation. Recorded with runs and in the manifest; None is the
        default (and not written into a run's record, so older runs stay reusable)."""
        return {"text_column": self.text_column, "text_field": self.text_field,
                "normalize": self.normalize}


class CountPlan(NamedTuple):
    """What an incremental count reads again, keeps and drops."""

    to_count: list        # InputFile: new or changed inputs
    keep_runs: set        # run directories still valid
    reused: dict          # {path: record} of the inputs they cover
    dropped: set          # paths counted before, no longer named


def _describe_corpus(inputs: list[corpus_io.InputFile]) -> str:
    if len(inputs) == 1:
        return "standard input" if inputs[0].path == "-" else inputs[0].path
    return f"the corpus ({len(inputs)} inputs)"


def count(corpus: str | list[str], workdir: str, min_count: int = 5, threads: int | None = None,
          progress: bool = True, spill_words: int = SPILL_WORDS, partitions: int = PARTITIONS,
          block_bytes: int = corpus_io.BLOCK_BYTES, small_input_bytes: int = SMALL_INPUT_BYTES,
          preflight: bool = True, text_column: str | None = None,
          text_field: str | None = None, ray: str | bool | None = None,
          normalize: str | None = None) -> dict:
    """Count every word of the corpus into ``workdir``; return the manifest.

    ``corpus``: files, directories, URIs or ``-`` (see ``corpus.expand_inputs``);
    ``text_column`` / ``text_field``: the text of Parquet or Arrow / JSON Lines
    inputs (default: the one named ``text``, else the only string one).
    ``normalize``: None (words as they are), "lower" or "words" (``normalize.py``);
    recorded in the manifest, and ``train``'s encoding applies it too.
    ``ray``: count on a Ray cluster (``ray_count.py``): its address as
    ``ray.init`` takes it (``"auto"``, ``"ray://host:10001"``), or True to
    start a local one; None counts on this machine's threads.
    Writes runs/, shards/, vocab.parquet and, last, count.json (module
    docstring). ``threads`` None means all cores; 1 counts in the calling thread.
    ``small_input_bytes``: files under this size are counted in groups (0:
    every input alone). ``preflight``: refuse to start when the workdir's
    disk cannot hold the counts (``preflight.check_count``).
    """
    settings = CountSettings(min_count, threads, spill_words, partitions, block_bytes,
                             small_input_bytes, text_column, text_field, normalize).checked()
    inputs = corpus_io.expand_inputs(corpus, text_column, text_field)
    if any(inp.path == "-" for inp in inputs):
        log.warning("counting standard input: `bigw2v train` reads the text again and cannot "
                    "read standard input a second time, so this workdir cannot be trained on; "
                    "to train, save the text to a file and count the file")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise OutputError(f"cannot write to workdir {workdir}: it is a file")
    if ray is None or ray is False:
        engine = LocalEngine()
    else:
        from .ray_count import RayEngine
        engine = RayEngine(None if ray is True else ray)
    with lock.hold(workdir, "bigw2v count"):
        try:
            return _count_locked(inputs, workdir, settings, progress, preflight, engine)
        finally:
            engine.close()


def _count_locked(inputs, workdir, settings: CountSettings, progress, check_room,
                  engine) -> dict:
    started = time.time()
    runs_root = os.path.join(workdir, RUNS_DIR)
    plan = _plan(inputs, runs_root, settings)
    old = old_manifest(workdir)
    if _up_to_date(old, inputs, plan, settings):
        log.info("%s is up to date: no input is new or changed", workdir)
        return {**old, "last_run": {"reused_inputs": len(inputs), "counted_inputs": 0,
                                    "dropped_inputs": 0, "up_to_date": True}}
    if plan.reused or plan.dropped:
        log.info("counting %d new or changed input(s), reusing the counts of %d unchanged, "
                 "dropping %d no longer named", len(plan.to_count), len(plan.reused),
                 len(plan.dropped))
    if check_room:
        from .preflight import check_count
        check_count(workdir, plan.to_count, runs_root, plan.keep_runs)
    clear_old_count(workdir, keep_runs=plan.keep_runs,
                    drop_encodings=bool(plan.to_count or plan.dropped))
    # Standard input has no size: then the bar shows bytes without a total.
    from_stdin = any(inp.path == "-" for inp in inputs)
    bar = progress_bar(None if from_stdin else sum(inp.size for inp in plan.to_count), "count",
                       unit="B", enabled=progress)
    try:
        counted = engine.count_groups(plan_groups(plan.to_count, settings.small_input_bytes),
                                      runs_root, settings, bar)
    except OSError as exc:
        # Reading errors are InputDataError by now; an OSError here is a write.
        raise write_failed(f"cannot write the counts in {workdir}", exc) from None
    finally:
        bar.close()
    records = [plan.reused.get(inp.path) or counted[inp.path] for inp in inputs]
    manifest, vocab = _merge(workdir, inputs, records, settings, engine)
    manifest["last_run"] = {"reused_inputs": len(plan.reused),
                            "counted_inputs": len(plan.to_count),
                            "dropped_inputs": len(plan.dropped), "up_to_date": False,
                            **engine.summary()}
    _write_results(workdir, manifest, vocab, started)
    return manifest


def _plan(inputs, runs_root, settings: CountSettings) -> CountPlan:
    """Incremental: inputs whose complete runs still describe them are not read again."""
    on_disk = read_group_records(runs_root, settings.partitions, settings.source_options())
    keep_runs, reused = reusable_groups(inputs, on_disk)
    named = {inp.path for inp in inputs}
    dropped = {m["path"] for members in on_disk.values() for m in members} - named
    to_count = [inp for inp in inputs if inp.path not in reused]
    return CountPlan(to_count, keep_runs, reused, dropped)


def _up_to_date(old, inputs, plan: CountPlan, settings: CountSettings) -> bool:
    return (old is not None and len(plan.reused) == len(inputs)
            and [r["path"] for r in old["inputs"]] == [inp.path for inp in inputs]
            and old["settings"].get("min_count") == settings.min_count
            and old["settings"].get("partitions") == settings.partitions
            and all(old["settings"].get(k) == v for k, v in settings.source_options().items()))


class LocalEngine:
    """Counts on this machine: the groups one after another, each on ``threads`` threads.

    ``count`` drives an engine through two steps, the map (``count_groups``:
    every group's runs under ``runs_root``) and the reduce (``merge``: every
    partition's runs summed into ``shards/``); ``ray_count.RayEngine`` runs
    the same steps as Ray tasks.
    """

    def __init__(self):
        self.written = None

    def count_groups(self, groups, runs_root, settings: CountSettings, bar) -> dict[str, dict]:
        """Count every group into its runs; {path: record} of their inputs."""
        # As many words as the counting tables may hold: memory stays within the same bound.
        self.written = WrittenRuns(settings.spill_words)
        counters = Counters(settings.threads, settings.spill_words, settings.normalize)
        counted = {}
        try:
            for group in groups:
                done = bar.n

                def on_bytes(n, done=done):
                    bar.update(done + n - bar.n)

                for record in count_group(group, runs_root, partitions=settings.partitions,
                                          block_bytes=settings.block_bytes, counters=counters,
                                          on_bytes=on_bytes, written=self.written,
                                          source_options=settings.source_options()):
                    counted[record["path"]] = record
                bar.update(done + sum(inp.size for inp in group) - bar.n)
        finally:
            counters.close()
        return counted

    def merge(self, workdir, settings: CountSettings) -> tuple[pa.Table, int, int]:
        """(words >= min_count, distinct words, tokens) after merging every partition."""
        return merge_runs(workdir, settings.partitions, settings.min_count, self.written)

    def summary(self) -> dict:
        """What the manifest's last_run says of the engine (nothing for the local one)."""
        return {}

    def close(self) -> None:
        """Let go of what the engine started (threads, clusters)."""


def _merge(workdir, inputs, records, settings: CountSettings, engine
           ) -> tuple[dict, pa.Table]:
    """Merge the runs; return the manifest and the sorted vocabulary."""
    total_tokens = sum(r["tokens"] for r in records)
    if total_tokens == 0:
        raise InputDataError(f"{_describe_corpus(inputs)} contains no words")
    try:
        vocab, distinct, merged_tokens = engine.merge(workdir, settings)
    except OSError as exc:
        raise write_failed(f"cannot write the counts in {workdir}", exc) from None
    # Every token is in exactly one run; a mismatch is a bug, not a user error.
    assert merged_tokens == total_tokens, (merged_tokens, total_tokens)
    if vocab.num_rows == 0:
        raise InputDataError(
            f"no word of {_describe_corpus(inputs)} occurs {settings.min_count} times or more "
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
        "settings": {"min_count": settings.min_count,
                     "max_word_bytes": corpus_io.MAX_WORD_BYTES,
                     "partitions": settings.partitions, **settings.source_options()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": None,
    }
    return manifest, vocab


def _write_results(workdir, manifest: dict, vocab: pa.Table, started: float) -> None:
    """Write vocab.parquet, then the manifest that marks the workdir counted."""
    try:
        write_parquet_atomic(vocab, os.path.join(workdir, VOCAB_NAME))
        manifest["seconds"] = round(time.time() - started, 3)
        write_json(os.path.join(workdir, MANIFEST_NAME), manifest)
    except OSError as exc:
        raise write_failed(f"cannot write the counts in {workdir}", exc) from None
