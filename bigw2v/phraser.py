"""Phrases: word2phrase's pass with exact pair counts in bounded memory.

``bigw2v phrases WORKDIR`` joins frequent adjacent words into one token
(``new york`` -> ``new_york``) the way the C tool's ``word2phrase`` does, over
the token IDs of a counted workdir rather than over text:

1. the corpus is encoded once with the vocabulary of *all* words (the shards
   hold every word's exact count), so a word under min-count still separates
   its neighbours, and with true line ends (``phrases/base/``);
2. each pass counts the adjacent pairs of its token stream (never across a
   line break) as uint64 keys ``a << 32 | b``: chunks of the stream are sorted
   and reduced in threads, the reduced runs are kept in memory up to a budget
   and otherwise spilled to hash partitions on disk, then each partition is
   summed and scored on its own, so memory is bounded whatever the number of
   distinct pairs (``count_pairs``);
3. a pair is joined when its score passes the pass's threshold, greedily left
   to right (a word joined to its left neighbour cannot start a pair with its
   right one: ``join_tokens``); pass k+1 runs on pass k's joined stream, so
   phrases of phrases form (``new_york_times``);
4. the result: ``WORKDIR/phrases.parquet`` (phrase, words, count, score, pass)
   and ``WORKDIR/phrases/`` (the joined stream, ``tokens.npy`` and
   ``line_starts.npy``, its vocabulary ``vocab.parquet`` and ``phrases.json``,
   written last). ``train`` trains on the joined stream while ``phrases.json``
   matches the workdir's count (``in_use``, ``encode_phrased``).

Scores (``score_pairs``): word2phrase's ``(n_ab - min_count) / n_a / n_b *
train_words`` in float32 and in its order of operations (the C tool's
``real``), or normalised PMI in [-1, 1] (gensim's ``npmi_scorer``). With
connector words (gensim 4's ``connector_words``), a phrase may hold up to
``MAX_CONNECTORS`` of them between its ends but neither start nor end with one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numba import njit

from . import corpus as corpus_mod
from . import lock
from .atomic import atomic_write, write_json
from .errors import InputDataError, MissingInputError, UsageError, write_failed
from .pool import ordered_map
from .workdir import (SHARDS_DIR, encoding_dir, listdir, read_manifest, read_vocab,
                      write_parquet_atomic)

log = logging.getLogger("bigw2v")

PHRASES_DIR = "phrases"
PHRASES_TABLE = "phrases.parquet"
PHRASES_META = "phrases.json"  # written last: marks the phrase set finished
PHRASES_FORMAT = "bigw2v-phrases"
PHRASES_VERSION = 1
BASE_META = "base.json"
MAX_CONNECTORS = 7  # connector words inside one candidate (8 bits each in a uint64)
CHUNK_TOKENS = 1 << 23  # tokens per pair-counting task
MEMORY_ROWS = 1 << 25  # reduced pair rows kept in memory before spilling (~0.6 GB)

# gensim 4's ENGLISH_CONNECTOR_WORDS
ENGLISH_CONNECTORS = ("a", "an", "the", "for", "of", "with", "without", "at", "from", "to",
                      "in", "on", "by", "and", "or")

PHRASES_SCHEMA = pa.schema([("phrase", pa.string()), ("words", pa.list_(pa.string())),
                            ("count", pa.int64()), ("score", pa.float64()),
                            ("pass", pa.int32())])


# ---------------------------------------------------------------- options


def parse_thresholds(text, passes):
    """``"200,100"`` -> [200.0, 100.0] for ``passes`` passes (the last repeats)."""
    if isinstance(text, (int, float)):
        values = [float(text)]
    elif isinstance(text, (list, tuple)):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(v) for v in str(text).split(",")]
        except ValueError:
            raise UsageError(f"--threshold {text!r}: not a number or comma-separated "
                             "numbers (e.g. 200,100)") from None
    if not values or any(v != v for v in values):
        raise UsageError(f"--threshold {text!r}: not a number")
    if len(values) > passes:
        raise UsageError(f"--threshold gives {len(values)} values for {passes} passes")
    return values + [values[-1]] * (passes - len(values))


def read_connectors(spec):
    """The connector words: None/'' (none), 'en' (gensim 4's English set) or a file, a word a line."""
    if not spec:
        return ()
    if spec == "en":
        return ENGLISH_CONNECTORS
    try:
        with open(spec, encoding="utf-8") as f:
            words = tuple(dict.fromkeys(w for line in f for w in line.split()))
    except OSError as e:
        raise MissingInputError(f"cannot read connector words {spec}: "
                                f"{e.strerror or e}") from None
    if len(words) > 255:
        raise UsageError(f"--connectors {spec}: {len(words)} words, at most 255")
    return words


def check_options(passes, thresholds, min_count, delimiter, scorer):
    if not isinstance(passes, int) or passes < 1:
        raise UsageError(f"--passes {passes}: must be at least 1")
    if not isinstance(min_count, int) or min_count < 1:
        raise UsageError(f"--min-count {min_count}: must be at least 1")
    if scorer not in ("default", "npmi"):
        raise UsageError(f"--scorer {scorer!r}: one of default, npmi")
    if not delimiter or any(c in delimiter for c in " \t\n\r"):
        raise UsageError(f"--delimiter {delimiter!r}: must be non-empty and hold no "
                         "space, tab or line break")
    if scorer == "npmi" and any(not -1 <= t <= 1 for t in thresholds):
        raise UsageError("--threshold: npmi scores are in [-1, 1]")


# ---------------------------------------------------------------- kernels


@njit(nogil=True, cache=True)
def pair_keys(tokens, lo, hi, begin, line_starts, li, eligible, conn, out_hi, out_lo):
    """The candidate keys ending at positions [lo, hi) of ``tokens``; returns how many.

    The walk starts at ``begin`` (<= lo, in line ``li``: line_starts[li] <= begin)
    to know what precedes ``lo``. A candidate is a non-connector word, up to
    MAX_CONNECTORS connector words (``conn[w] >= 0``), a non-connector word, all
    in one line, both ends ``eligible``: key hi = a << 32 | b, lo = the
    connectors' indices + 1, 8 bits each (0 without connectors).
    """
    n = 0
    n_lines = line_starts.shape[0] - 1
    next_line = line_starts[li + 1] if li + 1 <= n_lines else hi + 1
    start = -1
    code = np.uint64(0)
    ncon = 0
    for i in range(begin, hi):
        while i >= next_line:
            li += 1
            next_line = line_starts[li + 1] if li + 1 <= n_lines else hi + 1
            start = -1
        w = tokens[i]
        c = conn[w]
        if c < 0:
            if start >= 0 and i >= lo:
                a = tokens[start]
                if eligible[a] and eligible[w]:
                    out_hi[n] = (np.uint64(a) << np.uint64(32)) | np.uint64(w)
                    out_lo[n] = code
                    n += 1
            start = i
            code = np.uint64(0)
            ncon = 0
        elif start >= 0:
            if ncon == MAX_CONNECTORS:
                start = -1
            else:
                code |= np.uint64(c + 1) << np.uint64(8 * ncon)
                ncon += 1
    return n


@njit(nogil=True, cache=True)
def _find_pair(sel_hi, sel_lo, key_hi, key_lo):
    i = np.searchsorted(sel_hi, key_hi)
    while i < sel_hi.shape[0] and sel_hi[i] == key_hi:
        if sel_lo[i] == key_lo:
            return i
        i += 1
    return -1


@njit(nogil=True, cache=True)
def join_tokens(tokens, line_starts, conn, sel_hi, sel_lo, sel_id, out, out_line_starts):
    """Greedy joining, left to right in each line (gensim 4's ``analyze_sentence``;
    without connectors word2phrase's loop). Returns the number of output tokens.

    ``sel_*``: the joined candidates sorted by (hi, lo) and their phrase IDs.
    A candidate is searched for only when its first and last words start and end
    some phrase (two table lookups): searching the sorted phrases for every
    adjacent pair took 0.85 s a pass on wiki1e8, most of the phrase pass.
    """
    first_of = np.zeros(conn.shape[0], np.bool_)
    last_of = np.zeros(conn.shape[0], np.bool_)
    for j in range(sel_hi.shape[0]):
        first_of[sel_hi[j] >> np.uint64(32)] = True
        last_of[sel_hi[j] & np.uint64(0xFFFFFFFF)] = True
    n_out = 0
    n_lines = line_starts.shape[0] - 1
    for li in range(n_lines):
        out_line_starts[li] = n_out
        s, e = line_starts[li], line_starts[li + 1]
        start = -1
        code = np.uint64(0)
        ncon = 0
        for i in range(s, e):
            w = tokens[i]
            c = conn[w]
            if c < 0:
                if start >= 0:
                    k = -1
                    if ncon <= MAX_CONNECTORS and first_of[tokens[start]] and last_of[w]:
                        key = (np.uint64(tokens[start]) << np.uint64(32)) | np.uint64(w)
                        k = _find_pair(sel_hi, sel_lo, key, code)
                    if k >= 0:
                        out[n_out] = sel_id[k]
                        n_out += 1
                        start = -1
                        code = np.uint64(0)
                        ncon = 0
                        continue
                    for j in range(start, i):
                        out[n_out] = tokens[j]
                        n_out += 1
                start = i
                code = np.uint64(0)
                ncon = 0
            elif start >= 0:
                if ncon < MAX_CONNECTORS:
                    code |= np.uint64(c + 1) << np.uint64(8 * ncon)
                ncon += 1
            else:
                out[n_out] = w
                n_out += 1
        if start >= 0:
            for j in range(start, e):
                out[n_out] = tokens[j]
                n_out += 1
    out_line_starts[n_lines] = n_out
    return n_out


@njit(nogil=True, cache=True)
def keep_below(tokens, limit, line_starts, out, out_line_starts):
    """Tokens < limit copied to ``out`` and the line starts moved with them; returns the count."""
    n = 0
    li = 0
    n_lines = line_starts.shape[0] - 1
    for i in range(tokens.shape[0]):
        while li <= n_lines and line_starts[li] <= i:
            out_line_starts[li] = n
            li += 1
        t = tokens[i]
        if t < limit:
            out[n] = t
            n += 1
    while li <= n_lines:
        out_line_starts[li] = n
        li += 1
    return n


@njit(nogil=True, cache=True)
def render_lines(tokens, line_starts, l0, l1, offsets, arena, out):
    """The text of lines [l0, l1): words separated by a space, each line ended by LF."""
    n = 0
    for li in range(l0, l1):
        for i in range(line_starts[li], line_starts[li + 1]):
            if i > line_starts[li]:
                out[n] = 32
                n += 1
            w = tokens[i]
            for j in range(offsets[w], offsets[w + 1]):
                out[n] = arena[j]
                n += 1
        out[n] = 10
        n += 1
    return n


# ---------------------------------------------------------------- pair counting


def _mix(hi, lo):
    """A 64-bit hash of keys (for partitions)."""
    with np.errstate(over="ignore"):
        x = (hi ^ (lo * np.uint64(0xC2B2AE3D27D4EB4F))) * np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(32))


def reduce_keys(hi, lo, n=None):
    """Sum the counts of equal keys: (hi, lo, count int64) sorted by (hi, lo)."""
    if n is None:
        n = np.ones(hi.shape[0], np.int64)
    if hi.shape[0] == 0:
        return hi, lo, n.astype(np.int64)
    order = np.lexsort((lo, hi)) if lo.any() else np.argsort(hi, kind="stable")
    hi, lo, n = hi[order], lo[order], n[order]
    edge = np.empty(hi.shape[0], bool)
    edge[0] = True
    np.not_equal(hi[1:], hi[:-1], out=edge[1:])
    edge[1:] |= lo[1:] != lo[:-1]
    starts = np.flatnonzero(edge)
    return hi[starts], lo[starts], np.add.reduceat(n, starts).astype(np.int64)


def _chunk_pairs(stream, lines, lo_pos, hi_pos, eligible, conn):
    """Reduced candidate keys ending in [lo_pos, hi_pos): (hi, lo, count), sorted."""
    begin = max(0, lo_pos - MAX_CONNECTORS - 2)
    li = int(np.searchsorted(lines, begin, side="right")) - 1
    begin = max(begin, int(lines[li]))
    size = hi_pos - lo_pos
    out_hi = np.empty(size, np.uint64)
    out_lo = np.zeros(size, np.uint64)
    n = pair_keys(stream, lo_pos, hi_pos, begin, lines, li, eligible, conn, out_hi, out_lo)
    out_hi, out_lo = out_hi[:n], out_lo[:n]
    if n == 0 or out_lo.any():
        return reduce_keys(out_hi, out_lo)
    keys = np.sort(out_hi)  # no connectors: one sort, run lengths are the counts
    edge = np.empty(n, bool)
    edge[0] = True
    np.not_equal(keys[1:], keys[:-1], out=edge[1:])
    starts = np.flatnonzero(edge)
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    return keys[starts], out_lo[:starts.shape[0]], counts


class PairCounter:
    """Exact counts of candidate keys: reduced runs in memory up to ``memory_rows``,
    beyond that spilled to hash partitions in ``spill_dir`` and summed partition by
    partition (``partitions()`` yields each partition's (hi, lo, count) once)."""

    def __init__(self, spill_dir, memory_rows, n_partitions):
        self.spill_dir = spill_dir
        self.memory_rows = memory_rows
        self.n_partitions = n_partitions
        self.runs = []
        self.rows = 0
        self.spilled_rows = 0
        self.spills = 0

    def add(self, hi, lo, n):
        if hi.shape[0] == 0:
            return
        self.runs.append((hi, lo, n))
        self.rows += hi.shape[0]
        if self.rows > self.memory_rows:
            self._spill()

    def _spill(self):
        os.makedirs(self.spill_dir, exist_ok=True)
        hi = np.concatenate([r[0] for r in self.runs])
        lo = np.concatenate([r[1] for r in self.runs])
        n = np.concatenate([r[2] for r in self.runs])
        self.runs, self.rows = [], 0
        part = (_mix(hi, lo) % np.uint64(self.n_partitions)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.n_partitions + 1))
        try:
            for p in range(self.n_partitions):
                sel = order[bounds[p]:bounds[p + 1]]
                for name, arr in (("hi", hi), ("lo", lo), ("n", n)):
                    with open(os.path.join(self.spill_dir, f"{p:05d}.{name}"), "ab") as f:
                        f.write(arr[sel].tobytes())
        except OSError as e:
            raise write_failed(f"cannot spill pair counts to {self.spill_dir}", e) from None
        self.spilled_rows += hi.shape[0]
        self.spills += 1

    def partitions(self):
        if self.spills == 0:
            if not self.runs:
                return
            if len(self.runs) == 1:
                yield self.runs[0]
            else:
                yield reduce_keys(*(np.concatenate([r[i] for r in self.runs]) for i in range(3)))
            self.runs = []
            return
        if self.runs:
            self._spill()
        for p in range(self.n_partitions):
            arrays = []
            for name, dtype in (("hi", np.uint64), ("lo", np.uint64), ("n", np.int64)):
                path = os.path.join(self.spill_dir, f"{p:05d}.{name}")
                arrays.append(np.fromfile(path, dtype) if os.path.exists(path)
                              else np.zeros(0, dtype))
            if arrays[0].shape[0]:
                yield reduce_keys(*arrays)

    def close(self):
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def count_pairs(stream, lines, eligible, conn, threads, spill_dir, memory_rows=MEMORY_ROWS,
                chunk_tokens=CHUNK_TOKENS):
    """A ``PairCounter`` holding the exact counts of the stream's candidate pairs."""
    n_tokens = stream.shape[0]
    n_partitions = 16
    while n_partitions * memory_rows < n_tokens:
        n_partitions *= 2
    counter = PairCounter(spill_dir, memory_rows, n_partitions)
    chunk = max(1024, min(chunk_tokens, memory_rows))
    tasks = [(lo, min(lo + chunk, n_tokens)) for lo in range(0, n_tokens, chunk)]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="phrases") if threads > 1 else None
    try:
        for hi, lo, n in ordered_map(
                pool, lambda t: _chunk_pairs(stream, lines, t[0], t[1], eligible, conn),
                tasks, 2 * threads):
            counter.add(hi, lo, n)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return counter


def score_pairs(scorer, pab, pa, pb, min_count, train_words):
    """Scores of pairs with counts pab and word counts pa, pb (arrays)."""
    if scorer == "npmi":
        t = float(train_words)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_ab = pab / t
            score = np.log(p_ab / ((pa / t) * (pb / t))) / -np.log(p_ab)
        return np.where(p_ab >= 1.0, 1.0, score)
    # word2phrase: (pab - min_count) / (real)pa / (real)pb * (real)train_words, real = float
    f32 = np.float32
    score = (pab - min_count).astype(f32) / pa.astype(f32)
    score = score / pb.astype(f32)
    return score * f32(train_words)


def _above(scorer, score, threshold):
    if scorer == "npmi":
        return score > threshold
    return score > np.float32(threshold)


# ---------------------------------------------------------------- the base encoding


def _fingerprint(manifest):
    h = hashlib.sha256()
    h.update(json.dumps([[i["path"], i["size"], i["mtime_ns"]] for i in manifest["inputs"]],
                        sort_keys=True).encode())
    h.update(json.dumps(manifest.get("totals"), sort_keys=True).encode())
    h.update(json.dumps(manifest.get("settings", {}).get("normalize")).encode())
    return h.hexdigest()[:16]


def read_all_words(workdir):
    """Every counted word and its exact count (the shards), most frequent first, then by word."""
    files = [os.path.join(workdir, SHARDS_DIR, n) for n in listdir(os.path.join(workdir, SHARDS_DIR))
             if n.endswith(".parquet")]
    if not files:
        raise InputDataError(f"{workdir} has no shards: run `bigw2v count` again")
    tables = [pq.read_table(f, columns=["word", "count"]) for f in files]
    table = pa.concat_tables(tables)
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("word", "ascending")])
    table = table.take(order)
    return table.column("word").to_pylist(), table.column("count").to_numpy().astype(np.int64)


def base_encoding(workdir, manifest, words, threads, progress):
    """The corpus as IDs of ``words`` (all words) with its true line starts, cached in
    ``phrases/base/`` under the count's fingerprint. Returns (tokens, line_starts, reused)."""
    from .encode import _input_files, _write_tokens
    from .wordtable import WordTable

    directory = os.path.join(workdir, PHRASES_DIR, "base")
    meta_path = os.path.join(directory, BASE_META)
    fingerprint = _fingerprint(manifest)
    try:
        with open(meta_path) as f:
            if json.load(f).get("count") == fingerprint:
                return (np.load(os.path.join(directory, "tokens.npy"), mmap_mode="r"),
                        np.load(os.path.join(directory, "line_starts.npy")), True)
    except (OSError, ValueError):
        pass
    shutil.rmtree(directory, ignore_errors=True)
    n_tokens = int(manifest["totals"]["tokens"])
    inputs = _input_files(manifest, workdir)
    try:
        os.makedirs(directory)
        tokens = np.lib.format.open_memmap(os.path.join(directory, "tokens.npy"), mode="w+",
                                           dtype=np.uint32, shape=(n_tokens,))
    except OSError as e:
        raise write_failed(f"cannot write {directory}", e) from None
    breaks = _LineBreaks()
    table = WordTable.from_words(words, manifest["settings"].get("normalize"))
    position = _write_tokens(inputs, table, tokens, breaks, threads, progress,
                             corpus_mod.BLOCK_BYTES, f" on {workdir}")
    if position != n_tokens:
        raise InputDataError(f"the corpus has fewer words than were counted: "
                             f"re-run `bigw2v count` on {workdir}")
    tokens.flush()
    del tokens
    lines = breaks.line_starts(n_tokens)
    try:
        np.save(os.path.join(directory, "line_starts.npy"), lines)
    except OSError as e:
        raise write_failed(f"cannot write {directory}", e) from None
    write_json(meta_path, {"count": fingerprint, "tokens": n_tokens,
                           "lines": int(lines.shape[0] - 1), "words": len(words)})
    return (np.load(os.path.join(directory, "tokens.npy"), mmap_mode="r"), lines, False)


class _LineBreaks:
    """Collects the line ends (a token position per LF, and one per input end)."""

    def __init__(self):
        self.parts = []

    def add_breaks(self, breaks):
        breaks = np.asarray(breaks, np.int64)
        if breaks.shape[0]:
            self.parts.append(breaks)

    def line_starts(self, n_tokens):
        """int64 [L+1] from 0 to n_tokens, strictly increasing: lines without words
        are dropped (they join nothing and hold nothing)."""
        if n_tokens == 0:
            return np.zeros(1, np.int64)
        ends = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int64)
        return np.unique(np.concatenate([[0], ends, [n_tokens]])).astype(np.int64)


# ---------------------------------------------------------------- the passes


# Each scorer's default thresholds: word2phrase's big-model recipe; NPMI's scale is [-1, 1].
DEFAULT_THRESHOLDS = {"default": "200,100", "npmi": "0.5"}


def phrases(workdir, passes=2, threshold=None, min_count=5, delimiter="_",
            scorer="default", connectors=None, write_text=None, threads=None, progress=True,
            memory_rows=MEMORY_ROWS, chunk_tokens=CHUNK_TOKENS):
    """Find phrases in a counted workdir and keep the joined corpus for ``train``.

    ``threshold`` None is the scorer's default (``DEFAULT_THRESHOLDS``).
    Returns the record written to ``WORKDIR/phrases/phrases.json`` (settings, the
    phrases of each pass, figures).
    """
    from .settings import threads_to_use

    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(scorer, DEFAULT_THRESHOLDS["default"])

    thresholds = parse_thresholds(threshold, passes) if isinstance(passes, int) else None
    check_options(passes, thresholds, min_count, delimiter, scorer)
    connector_words = read_connectors(connectors)
    if not os.path.isdir(workdir):
        raise MissingInputError(f"{workdir} is not a counted workdir: run `bigw2v count` first")
    threads = threads_to_use(threads or os.cpu_count() or 1, "phrases")
    with lock.hold(workdir, "bigw2v phrases"):
        return _phrases(workdir, passes, thresholds, min_count, delimiter, scorer,
                        connector_words, write_text, threads, progress, memory_rows,
                        chunk_tokens)


def _phrases(workdir, passes, thresholds, min_count, delimiter, scorer, connector_words,
             write_text, threads, progress, memory_rows, chunk_tokens):
    started = time.time()
    manifest = read_manifest(workdir)
    pdir = os.path.join(workdir, PHRASES_DIR)
    meta_path = os.path.join(pdir, PHRASES_META)
    if os.path.exists(meta_path):
        os.remove(meta_path)  # the marker goes first
    words, counts = read_all_words(workdir)
    t0 = time.time()
    stream, lines, reused = base_encoding(workdir, manifest, words, threads, progress)
    encode_seconds = time.time() - t0
    parts = [(w,) for w in words]  # the base words of each token
    by_string = {w: i for i, w in enumerate(words) if delimiter in w}
    conn_index = {w: k for k, w in enumerate(connector_words)}
    by_word = {w: i for i, w in enumerate(words) if w in conn_index} if conn_index else {}
    base_conn = None
    tmp = os.path.join(pdir, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, exist_ok=True)
    rows = []
    pass_figures = []
    for k in range(passes):
        t_pass = time.time()
        vocab_size = len(words)
        counts = np.bincount(stream, minlength=vocab_size).astype(np.int64) if k else counts
        train_words = int(stream.shape[0])
        thr = thresholds[k]
        conn = np.full(vocab_size, -1, np.int16)
        for w, c in conn_index.items():
            i = by_word.get(w) if k == 0 else None
            if i is not None:
                conn[i] = c
        if k and connector_words:
            conn[:len(base_conn)] = base_conn
        eligible = counts >= min_count
        if scorer == "default" and thr > 0:
            # n_ab <= min(n_a, n_b), so a score above thr needs n_a, n_b < train_words / thr
            eligible &= counts < train_words / thr * 1.001 + 1
        eligible &= conn < 0
        if k == 0:
            base_conn = conn.copy()
        counter = count_pairs(stream, lines, eligible.astype(np.uint8), conn, threads,
                              os.path.join(tmp, f"pairs-{k + 1}"), memory_rows, chunk_tokens)
        sel = [[], [], [], []]
        distinct = 0
        try:
            for hi, lo, n in counter.partitions():
                distinct += hi.shape[0]
                keep = n >= min_count
                hi, lo, n = hi[keep], lo[keep], n[keep]
                a = (hi >> np.uint64(32)).astype(np.int64)
                b = (hi & np.uint64(0xFFFFFFFF)).astype(np.int64)
                score = score_pairs(scorer, n, counts[a], counts[b], min_count, train_words)
                keep = _above(scorer, score, thr)
                for lst, arr in zip(sel, (hi[keep], lo[keep], n[keep], score[keep])):
                    lst.append(arr)
            spills = counter.spills
        finally:
            counter.close()
        sel_hi, sel_lo, sel_n, sel_score = (np.concatenate(s) if s else np.zeros(0, d)
                                            for s, d in zip(sel, (np.uint64, np.uint64,
                                                                   np.int64, np.float64)))
        order = np.lexsort((sel_lo, sel_hi))
        sel_hi, sel_lo, sel_n, sel_score = sel_hi[order], sel_lo[order], sel_n[order], sel_score[order]
        sel_id = np.empty(sel_hi.shape[0], np.uint32)
        pass_rows = {}
        for j, (h, l, cnt, sc) in enumerate(zip(sel_hi.tolist(), sel_lo.tolist(),
                                                 sel_n.tolist(), sel_score.tolist())):
            a, b = h >> 32, h & 0xFFFFFFFF
            middle = []
            while l:
                middle.append(connector_words[(l & 0xFF) - 1])
                l >>= 8
            string = delimiter.join([words[a], *middle, words[b]])
            pid = by_string.get(string)
            if pid is None:
                pid = by_string[string] = len(words)
                words.append(string)
                parts.append(parts[a] + tuple(middle) + parts[b])
            sel_id[j] = pid
            row = pass_rows.get(string)
            if row is None:
                pass_rows[string] = [string, list(parts[pid]), cnt, sc, k + 1]
            else:
                row[2] += cnt
                row[3] = max(row[3], sc)
        rows.extend(pass_rows.values())
        joined = 0
        if sel_hi.shape[0]:
            conn_all = np.full(len(words), -1, np.int16)
            conn_all[:vocab_size] = conn
            out = np.lib.format.open_memmap(os.path.join(tmp, f"stream-{k + 1}.npy"), mode="w+",
                                            dtype=np.uint32, shape=(train_words,))
            out_lines = np.empty(lines.shape[0], np.int64)
            n_out = join_tokens(stream, lines, conn_all, sel_hi, sel_lo, sel_id, out, out_lines)
            joined = train_words - n_out
            stream, lines = out[:n_out], out_lines
        pass_figures.append({"pass": k + 1, "threshold": thr, "train_words": train_words,
                             "distinct_pairs": distinct, "phrases": len(pass_rows),
                             "joined_occurrences": int(joined), "spills": spills,
                             "seconds": round(time.time() - t_pass, 3)})
        log.info("pass %d: %d phrases above %g (%d occurrences joined, %d distinct pairs)",
                 k + 1, len(pass_rows), thr, joined, distinct)
    record = _write_result(workdir, manifest, words, stream, lines, rows, {
        "passes": passes, "thresholds": thresholds, "min_count": min_count,
        "delimiter": delimiter, "scorer": scorer, "connectors": list(connector_words)},
        pass_figures, encode_seconds, reused, started)
    shutil.rmtree(tmp, ignore_errors=True)
    if write_text:
        t0 = time.time()
        write_text_file(workdir, write_text)
        record["figures"]["write_text_seconds"] = round(time.time() - t0, 3)
    return record


def _write_result(workdir, manifest, words, stream, lines, rows, settings, pass_figures,
                  encode_seconds, reused, started):
    pdir = os.path.join(workdir, PHRASES_DIR)
    final_counts = np.bincount(stream, minlength=len(words)).astype(np.int64)
    table = pa.table({"word": pa.array(words, pa.string()), "count": final_counts})
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("word", "ascending")])
    n_kept = int((final_counts > 0).sum())
    order = order.to_numpy()[:n_kept]
    remap = np.zeros(len(words), np.uint32)
    remap[order] = np.arange(n_kept, dtype=np.uint32)
    try:
        write_parquet_atomic(table.take(order), os.path.join(pdir, "vocab.parquet"))
        tokens_path = os.path.join(pdir, "tokens.npy")
        out = np.lib.format.open_memmap(tokens_path + ".tmp.npy", mode="w+", dtype=np.uint32,
                                        shape=(stream.shape[0],))
        step = 1 << 24
        for lo in range(0, stream.shape[0], step):
            out[lo:lo + step] = remap[stream[lo:lo + step]]
        out.flush()
        del out
        os.replace(tokens_path + ".tmp.npy", tokens_path)
        np.save(os.path.join(pdir, "line_starts.npy"), lines)
        rows.sort(key=lambda r: (r[4], -r[2], r[0]))
        ptable = pa.table([pa.array([r[i] for r in rows], t.type)
                           for i, t in enumerate(PHRASES_SCHEMA)], schema=PHRASES_SCHEMA)
        with atomic_write(os.path.join(workdir, PHRASES_TABLE)) as f:
            pq.write_table(ptable, f)
    except OSError as e:
        raise write_failed(f"cannot write the phrases in {workdir}", e) from None
    fingerprint = _fingerprint(manifest)
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    h.update(fingerprint.encode())
    h.update(str(len(rows)).encode())
    record = {"format": PHRASES_FORMAT, "version": PHRASES_VERSION,
              "phrase_set": "p-" + h.hexdigest()[:12], "count": fingerprint,
              "settings": settings, "phrases": len(rows),
              "tokens": int(stream.shape[0]), "vocab_size": n_kept,
              "lines": int(lines.shape[0] - 1),
              "passes": pass_figures,
              "figures": {"encode_seconds": round(encode_seconds, 3), "encoding_reused": reused,
                          "seconds": round(time.time() - started, 3)}}
    write_json(os.path.join(pdir, PHRASES_META), record)
    return record


# ---------------------------------------------------------------- reading the result


def read_record(workdir):
    try:
        with open(os.path.join(workdir, PHRASES_DIR, PHRASES_META)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if record.get("format") == PHRASES_FORMAT else None


def in_use(workdir, manifest):
    """The phrase set ``train`` uses: the record of a finished ``phrases`` on this count,
    else None (a stale one is reported)."""
    record = read_record(workdir)
    if record is None:
        return None
    if record.get("count") != _fingerprint(manifest):
        log.warning("%s: the phrases (%s) were found on an earlier count: training on words; "
                    "run `bigw2v phrases %s` again", workdir, record.get("phrase_set"), workdir)
        return None
    return record


def summary(record):
    """What ``train`` records of the phrase set it trained on (run.json, model.json)."""
    if record is None:
        return None
    return {"phrase_set": record["phrase_set"], "phrases": record["phrases"],
            "settings": record["settings"]}


def read_phrased_vocab(workdir):
    """(words, counts) of the phrased vocabulary (``workdir.read_vocab`` on its file)."""
    return read_vocab(os.path.join(workdir, PHRASES_DIR, "vocab.parquet"))


def encode_phrased(workdir, manifest, record, words, key):
    """The joined corpus as an encoding of ``words`` (a prefix of the phrased vocabulary)
    in ``WORKDIR/encoded/<key>/``, as ``encode.encode`` makes it. Returns (corpus, reused)."""
    from .encode import ENCODED_FORMAT, ENCODED_META, ENCODED_VERSION, EncodedCorpus
    from .encode import sentence_starts_from_breaks

    directory = encoding_dir(workdir, key)
    if os.path.exists(os.path.join(directory, ENCODED_META)):
        return EncodedCorpus(directory), True
    started = time.time()
    pdir = os.path.join(workdir, PHRASES_DIR)
    tokens = np.load(os.path.join(pdir, "tokens.npy"), mmap_mode="r")
    lines = np.load(os.path.join(pdir, "line_starts.npy"))
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.makedirs(directory)
        tmp = np.lib.format.open_memmap(os.path.join(directory, "kept.tmp.npy"), mode="w+",
                                        dtype=np.uint32, shape=(tokens.shape[0],))
        out_lines = np.empty(lines.shape[0], np.int64)
        n = keep_below(tokens, np.uint32(len(words)), lines, tmp, out_lines)
        out = np.lib.format.open_memmap(os.path.join(directory, "tokens.npy"), mode="w+",
                                        dtype=np.uint32, shape=(n,))
        out[:] = tmp[:n]
        out.flush()
        del out, tmp
        os.remove(os.path.join(directory, "kept.tmp.npy"))
        starts = sentence_starts_from_breaks(out_lines, n, corpus_mod.MAX_SENTENCE_WORDS)
        np.save(os.path.join(directory, "sentence_starts.npy"), starts)
    except OSError as e:
        raise write_failed(f"cannot write the encoded corpus in {directory}", e) from None
    write_json(os.path.join(directory, ENCODED_META), {
        "format": ENCODED_FORMAT, "version": ENCODED_VERSION, "key": key, "tokens": int(n),
        "sentences": int(starts.shape[0] - 1), "vocab_size": len(words),
        "max_sentence_words": corpus_mod.MAX_SENTENCE_WORDS,
        "normalize": manifest["settings"].get("normalize"),
        "phrase_set": record["phrase_set"], "seconds": round(time.time() - started, 3)})
    return EncodedCorpus(directory), False


def phrased_key(plain_key, record):
    return hashlib.sha256(f"{plain_key} {record['phrase_set']}".encode()).hexdigest()[:16]


def write_text_file(workdir, path):
    """The joined corpus as text: a line per input line, tokens separated by a space."""

    pdir = os.path.join(workdir, PHRASES_DIR)
    words, _ = read_phrased_vocab(workdir)
    tokens = np.load(os.path.join(pdir, "tokens.npy"), mmap_mode="r")
    lines = np.load(os.path.join(pdir, "line_starts.npy"))
    arr = pa.array(words, pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], np.int64, len(words) + 1).copy()
    arena = (np.frombuffer(arr.buffers()[2], np.uint8, int(offsets[-1])).copy()
             if arr.buffers()[2] is not None else np.zeros(0, np.uint8))
    lengths = np.diff(offsets)
    n_lines = lines.shape[0] - 1
    try:
        f = open(path, "wb") if path != "-" else os.fdopen(os.dup(1), "wb")
        with f:
            l0 = 0
            step = 1 << 22
            while l0 < n_lines:
                # lines up to about `step` tokens (at least one line)
                l1 = int(np.searchsorted(lines, lines[l0] + step, side="right")) - 1
                l1 = min(max(l1, l0 + 1), n_lines)
                seg = tokens[lines[l0]:lines[l1]]
                size = int(lengths[seg].sum()) + seg.shape[0] + (l1 - l0)
                out = np.empty(size, np.uint8)
                n = render_lines(tokens, lines, l0, l1, offsets, arena, out)
                f.write(out[:n].data)
                l0 = l1
    except OSError as e:
        raise write_failed(f"cannot write {path}", e) from None
