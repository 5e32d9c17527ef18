"""Exact counts of a token stream's candidate pairs in bounded memory (``bigw2v phrases``).

A candidate is two words next to each other in a line, or with up to
``MAX_CONNECTORS`` connector words between them, as a key of two uint64:
hi = a << 32 | b (the end words' IDs), lo = the connectors' indices + 1, 8 bits
each (0, and not stored, without connectors).

Chunks of the stream become keys and are reduced (sorted, equal keys summed) in
threads; reduced runs are kept in memory up to ``memory_rows`` rows, then
spilled to hash partitions on disk, and each partition is summed on its own.
A pass has at most one key per token of an eligible word (a key ends on one),
so the partitions are as many as make that bound ``memory_rows`` rows each:
memory is a small multiple of ``memory_rows`` rows whatever the corpus.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .encode import MappedPages
from .errors import write_failed
from .pool import ordered_map

MAX_CONNECTORS = 7  # connector words inside one candidate (8 bits each in a uint64)
CHUNK_TOKENS = 1 << 21  # tokens per pair-counting task (~45 bytes a token while it runs)
MEMORY_ROWS = 1 << 22  # reduced rows held before spilling, and the rows of a partition


@njit(nogil=True, cache=True)
def pair_keys(tokens, lo, hi, begin, line_starts, li, eligible, conn, out_hi, out_lo, with_lo):
    """The candidate keys ending at positions [lo, hi) of ``tokens``; returns how many.

    The walk starts at ``begin`` (<= lo, in line ``li``: line_starts[li] <= begin)
    to know what precedes ``lo``. A candidate is a non-connector word, up to
    MAX_CONNECTORS connector words (``conn[w] >= 0``), a non-connector word, all
    in one line, both ends ``eligible``. ``out_lo`` is written only ``with_lo``.
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
                    if with_lo:
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
def count_sorted(keys, counts):
    """Sorted ``keys`` reduced in place to their distinct values, ``counts`` the run
    lengths; returns how many."""
    d = -1
    for i in range(keys.shape[0]):
        if d < 0 or keys[i] != keys[d]:
            d += 1
            keys[d] = keys[i]
            counts[d] = 1
        else:
            counts[d] += 1
    return d + 1


@njit(nogil=True, cache=True)
def sum_in_order(hi, lo, n, order, with_lo, out_hi, out_lo, out_n):
    """The rows taken in ``order`` (sorted by key), equal keys summed into out_*;
    returns how many distinct. ``lo`` and ``out_lo`` are read and written only ``with_lo``."""
    d = -1
    for i in range(order.shape[0]):
        j = order[i]
        if d < 0 or hi[j] != out_hi[d] or (with_lo and lo[j] != out_lo[d]):
            d += 1
            out_hi[d] = hi[j]
            if with_lo:
                out_lo[d] = lo[j]
            out_n[d] = n[j]
        else:
            out_n[d] += n[j]
    return d + 1


_NO_LO = np.zeros(1, np.uint64)  # the kernels' lo without connectors (never read)


def no_lo(rows):
    """The lo column of ``rows`` keys without connectors: zeros, no memory."""
    return np.broadcast_to(np.uint64(0), (rows,))


def reduce_keys(hi, lo, n):
    """Sum the counts ``n`` of equal keys: (hi, lo, count int64) sorted by (hi, lo).

    ``lo`` None: keys without connectors (the lo returned is ``no_lo``). Memory:
    the input, an int64 order and the distinct rows.
    """
    with_lo = lo is not None
    order = np.lexsort((lo, hi)) if with_lo else np.argsort(hi)
    out_hi = np.empty(hi.shape[0], np.uint64)
    out_lo = np.empty(hi.shape[0], np.uint64) if with_lo else _NO_LO
    out_n = np.empty(hi.shape[0], np.int64)
    d = sum_in_order(hi, lo if with_lo else _NO_LO, n, order, with_lo, out_hi, out_lo, out_n)
    # copies of the distinct rows: the untouched rest of out_* is never resident
    return (out_hi[:d].copy(), out_lo[:d].copy() if with_lo else no_lo(d), out_n[:d].copy())


def chunk_pairs(stream, lines, lo_pos, hi_pos, eligible, conn, with_lo):
    """Reduced candidate keys ending in [lo_pos, hi_pos): (hi, lo or None, count), sorted."""
    begin = max(0, lo_pos - MAX_CONNECTORS - 2)
    li = int(np.searchsorted(lines, begin, side="right")) - 1
    begin = max(begin, int(lines[li]))
    size = hi_pos - lo_pos
    out_hi = np.empty(size, np.uint64)
    out_lo = np.empty(size, np.uint64) if with_lo else _NO_LO
    n = pair_keys(stream, lo_pos, hi_pos, begin, lines, li, eligible, conn, out_hi, out_lo,
                  with_lo)
    if with_lo:
        return reduce_keys(out_hi[:n], out_lo[:n], np.ones(n, np.int64))
    keys = out_hi[:n]
    keys.sort()  # no connectors: one sort, run lengths are the counts
    counts = np.empty(n, np.int64)
    d = count_sorted(keys, counts)
    return keys[:d].copy(), None, counts[:d].copy()


def key_partitions(hi, lo, n_partitions):
    """The hash partition of each key (a 64-bit mix of hi and lo), in the smallest dtype."""
    with np.errstate(over="ignore"):
        if lo is None:
            x = hi.copy()
        else:
            x = lo * np.uint64(0xC2B2AE3D27D4EB4F)
            x ^= hi
        x *= np.uint64(0x9E3779B97F4A7C15)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(32)
    x %= np.uint64(n_partitions)
    return x.astype(np.min_scalar_type(n_partitions))


class PairCounter:
    """Exact counts of candidate keys: reduced runs in memory up to ``memory_rows``,
    beyond that spilled to ``n_partitions`` hash partitions in ``spill_dir``;
    ``partitions()`` yields each partition's (hi, lo, count), summed, once."""

    def __init__(self, spill_dir, memory_rows, n_partitions, with_lo):
        self.spill_dir = spill_dir
        self.memory_rows = memory_rows
        self.n_partitions = n_partitions
        self.with_lo = with_lo
        self.columns = ("hi", "lo", "n") if with_lo else ("hi", "n")
        self.runs = {name: [] for name in self.columns}
        self.rows = 0
        self.spilled_rows = 0
        self.spills = 0

    def add(self, hi, lo, n):
        if hi.shape[0] == 0:
            return
        for name, arr in zip(("hi", "lo", "n"), (hi, lo, n)):
            if name in self.runs:
                self.runs[name].append(arr)
        self.rows += hi.shape[0]
        if self.rows > self.memory_rows:
            self._spill()

    def _take(self, name):
        """One column of the runs held, concatenated, the runs' arrays let go."""
        arrays, self.runs[name] = self.runs[name], []
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def _path(self, p, name):
        return os.path.join(self.spill_dir, f"{p:05d}.{name}")

    def _spill(self):
        os.makedirs(self.spill_dir, exist_ok=True)
        columns = {"hi": self._take("hi"), "lo": self._take("lo") if self.with_lo else None}
        rows, self.rows = columns["hi"].shape[0], 0
        part = key_partitions(columns["hi"], columns["lo"], self.n_partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=self.n_partitions))])
        del part
        try:
            for name in self.columns:
                arr = self._take("n") if name == "n" else columns.pop(name)
                for p in range(self.n_partitions):
                    if bounds[p] < bounds[p + 1]:
                        with open(self._path(p, name), "ab") as f:
                            f.write(arr[order[bounds[p]:bounds[p + 1]]].tobytes())
                del arr  # each column goes once written
        except OSError as e:
            raise write_failed(f"cannot spill pair counts to {self.spill_dir}", e) from None
        self.spilled_rows += rows
        self.spills += 1

    def partitions(self):
        if self.spills == 0:
            if self.rows:
                hi = self._take("hi")
                lo = self._take("lo") if self.with_lo else None
                self.rows = 0
                yield reduce_keys(hi, lo, self._take("n"))
            return
        if self.rows:
            self._spill()
        for p in range(self.n_partitions):
            if not os.path.exists(self._path(p, "hi")):
                continue
            hi = np.fromfile(self._path(p, "hi"), np.uint64)
            lo = np.fromfile(self._path(p, "lo"), np.uint64) if self.with_lo else None
            yield reduce_keys(hi, lo, np.fromfile(self._path(p, "n"), np.int64))

    def close(self):
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def count_pairs(stream, lines, eligible, conn, max_keys, threads, spill_dir,
                memory_rows=MEMORY_ROWS, chunk_tokens=CHUNK_TOKENS):
    """A ``PairCounter`` holding the exact counts of the stream's candidate pairs.

    ``stream`` and ``lines`` (line starts) are memory-mapped: their pages are
    dropped behind the chunks counted. ``max_keys``: a bound on the keys (the
    tokens of eligible words), which sets the number of partitions.
    """
    n_tokens = stream.shape[0]
    with_lo = bool((conn >= 0).any())
    counter = PairCounter(spill_dir, memory_rows, max(1, -(-int(max_keys) // memory_rows)),
                          with_lo)
    chunk = max(1024, min(chunk_tokens, memory_rows))
    tasks = [(lo, min(lo + chunk, n_tokens)) for lo in range(0, n_tokens, chunk)]
    tokens, starts = np.asarray(stream), np.asarray(lines)
    pages = (MappedPages(stream), MappedPages(lines))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="phrases") if threads > 1 else None
    try:
        for (lo, hi), (keys, codes, n) in zip(tasks, ordered_map(
                pool, lambda t: chunk_pairs(tokens, starts, t[0], t[1], eligible, conn, with_lo),
                tasks, 2 * threads)):
            counter.add(keys, codes, n)
            # the chunks still running begin at most MAX_CONNECTORS + 2 tokens before hi
            done = max(0, hi - MAX_CONNECTORS - 2)
            pages[0].drop(done)
            pages[1].drop(int(np.searchsorted(starts, done, side="right")) - 1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return counter
