"""Phrases: word2phrase's pass with exact pair counts in bounded memory.

``bigw2v phrases WORKDIR`` joins frequent adjacent words into one token
(``new york`` -> ``new_york``) the way the C tool's ``word2phrase`` does, over
the token IDs of a counted workdir rather than over text:

1. the corpus is encoded once with the vocabulary of *all* words (the shards
   hold every word's exact count), so a word under min-count still separates
   its neighbours, and with true line ends (``phrases/base/``);
2. each pass counts the adjacent pairs of its token stream (never across a
   line break) exactly in bounded memory (``pairs.py``), and scores them a
   partition at a time;
3. a pair is joined when its score passes the pass's threshold, greedily left
   to right (a word joined to its left neighbour cannot start a pair with its
   right one: ``join_tokens``); pass k+1 runs on pass k's joined stream, so
   phrases of phrases form (``new_york_times``);
4. the result: ``WORKDIR/phrases.parquet`` (phrase, words, count, score, pass)
   and ``WORKDIR/phrases/`` (the joined stream, ``tokens.npy`` and
   ``line_starts.npy``, its vocabulary ``vocab.parquet`` and ``phrases.json``,
   written last). ``train`` trains on the joined stream while ``phrases.json``
   matches the workdir's count (``in_use``, ``encode_phrased``).

Memory is bounded whatever the corpus: the counted words stay one Arrow array
(``Vocabulary``: Python strings only for the words of phrases), pair counting
has its budget (``pairs.MEMORY_ROWS``), and every pass over a token stream
(memory-mapped files: the base encoding, each pass's joined stream, the
result) goes a block at a time with the pages behind dropped (``MappedPages``).

Scores (``score_pairs``): word2phrase's ``(n_ab - min_count) / n_a / n_b *
train_words`` in float32 and in its order of operations (the C tool's
``real``), or normalised PMI in [-1, 1] (gensim's ``npmi_scorer``). With
connector words (gensim 4's ``connector_words``), a phrase may hold up to
``MAX_CONNECTORS`` of them between its ends but neither start nor end with one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numba import njit

from . import corpus as corpus_mod
from . import lock
from .atomic import atomic_write, write_json
from .encode import MappedPages, SentenceStartsWriter, input_files, write_encoding
from .errors import InputDataError, MissingInputError, UsageError, write_failed
from .pairs import CHUNK_TOKENS, MAX_CONNECTORS, MEMORY_ROWS, count_pairs
from .wordtable import WordTable
from .workdir import (SHARDS_DIR, encoding_dir, listdir, read_manifest, read_vocab,
                      write_parquet_atomic)

log = logging.getLogger("bigw2v")

PHRASES_DIR = "phrases"
PHRASES_TABLE = "phrases.parquet"
PHRASES_META = "phrases.json"  # written last: marks the phrase set finished
PHRASES_FORMAT = "bigw2v-phrases"
PHRASES_VERSION = 1
BASE_META = "base.json"
BLOCK_TOKENS = 1 << 24  # tokens a step of the passes over a whole stream (64 MB of IDs)

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
def _find_pair(sel_hi, sel_lo, key_hi, key_lo):
    i = np.searchsorted(sel_hi, key_hi)
    while i < sel_hi.shape[0] and sel_hi[i] == key_hi:
        if sel_lo[i] == key_lo:
            return i
        i += 1
    return -1


@njit(nogil=True, cache=True)
def join_tokens(tokens, line_starts, l0, l1, conn, first_of, last_of, sel_hi, sel_lo, sel_id,
                out, n_out, out_line_starts):
    """Greedy joining, left to right in each of lines [l0, l1) (gensim 4's
    ``analyze_sentence``; without connectors word2phrase's loop), written to ``out``
    from ``n_out`` on. Returns the new ``n_out``.

    ``sel_*``: the joined candidates sorted by (hi, lo) and their phrase IDs.
    A candidate is searched for only when its first and last words start and end
    some phrase (``first_of``, ``last_of``): searching the sorted phrases for every
    adjacent pair took 0.85 s a pass on wiki1e8, most of the phrase pass.
    """
    for li in range(l0, l1):
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
    return n_out


@njit(nogil=True, cache=True)
def keep_below(tokens, line_starts, l0, l1, limit, out, n, out_line_ends):
    """The tokens < limit of lines [l0, l1) copied to ``out`` from ``n`` on; each
    line's end in ``out`` to out_line_ends[li - l0]. Returns the new ``n``, or -1
    when ``out`` is too short."""
    for li in range(l0, l1):
        for i in range(line_starts[li], line_starts[li + 1]):
            t = tokens[i]
            if t < limit:
                if n == out.shape[0]:
                    return -1
                out[n] = t
                n += 1
        out_line_ends[li - l0] = n
    return n


@njit(nogil=True, cache=True)
def add_counts(tokens, counts):
    """counts[t] += 1 for each token."""
    for i in range(tokens.shape[0]):
        counts[tokens[i]] += 1


def line_blocks(lines, block_tokens=BLOCK_TOKENS):
    """Ranges [l0, l1) of lines holding about ``block_tokens`` tokens (at least one line)."""
    n_lines = lines.shape[0] - 1
    l0 = 0
    while l0 < n_lines:
        l1 = int(np.searchsorted(lines, lines[l0] + block_tokens, side="right")) - 1
        l1 = min(max(l1, l0 + 1), n_lines)
        yield l0, l1
        l0 = l1


def stream_counts(stream, size):
    """How often each of ``size`` IDs occurs in the memory-mapped ``stream``, read a
    block at a time with the pages behind dropped."""
    counts = np.zeros(size, np.int64)
    tokens, pages = np.asarray(stream), MappedPages(stream)
    for lo in range(0, tokens.shape[0], BLOCK_TOKENS):
        add_counts(tokens[lo:lo + BLOCK_TOKENS], counts)
        pages.drop(lo + BLOCK_TOKENS)
    return counts


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


# ---------------------------------------------------------------- scores


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
    """Every counted word (an Arrow array: no Python object per word) and its exact count
    (the shards), most frequent first, then by word."""
    files = [os.path.join(workdir, SHARDS_DIR, n) for n in listdir(os.path.join(workdir, SHARDS_DIR))
             if n.endswith(".parquet")]
    if not files:
        raise InputDataError(f"{workdir} has no shards: run `bigw2v count` again")
    # one chunk: Arrow sorts a table of 16 chunks about 4x slower
    table = pa.concat_tables([pq.read_table(f, columns=["word", "count"])
                              for f in files]).combine_chunks()
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("word", "ascending")])
    table = table.take(order)
    words = table.column("word").combine_chunks().cast(pa.large_string())
    counts = table.column("count").to_numpy().astype(np.int64)
    del table, order
    release_arrow_memory()
    return words, counts


def release_arrow_memory():
    """Give the memory Arrow's pool keeps for reuse back to the system: sorting tens
    of millions of words leaves hundreds of MB there, which numpy cannot use."""
    pa.default_memory_pool().release_unused()


def base_encoding(workdir, manifest, words, threads, progress):
    """The corpus as IDs of ``words`` (all words) with its true line starts, cached in
    ``phrases/base/`` under the count's fingerprint. Returns (tokens, line_starts path,
    reused); the tokens are memory-mapped."""
    directory = os.path.join(workdir, PHRASES_DIR, "base")
    meta_path = os.path.join(directory, BASE_META)
    tokens_path = os.path.join(directory, "tokens.npy")
    lines_path = os.path.join(directory, "line_starts.npy")
    fingerprint = _fingerprint(manifest)
    try:
        with open(meta_path) as f:
            if json.load(f).get("count") == fingerprint:
                return np.load(tokens_path, mmap_mode="r"), lines_path, True
    except (OSError, ValueError):
        pass
    n_tokens = int(manifest["totals"]["tokens"])
    table = WordTable.from_words(words, manifest["settings"].get("normalize"))
    # Line starts: starts never cut (no line is longer than the corpus).
    _, n_lines = write_encoding(input_files(manifest, workdir), table, directory,
                                os.path.basename(lines_path), max(1, n_tokens), n_tokens,
                                threads, progress, corpus_mod.BLOCK_BYTES, f" on {workdir}")
    write_json(meta_path, {"count": fingerprint, "tokens": n_tokens, "lines": n_lines,
                           "words": len(words)})
    return np.load(tokens_path, mmap_mode="r"), lines_path, False


class Vocabulary:
    """The words a pass's token IDs stand for: the counted words (one Arrow array, no
    Python object per word: a billion-token corpus has tens of millions) then the
    phrases made so far (Python strings, with their words: they are few)."""

    def __init__(self, words, delimiter):
        self.base = words
        self.n_base = len(words)
        self.phrases = []  # the strings of IDs n_base, n_base + 1, ...
        self.parts = {}  # a phrase's ID -> its counted words
        # a phrase equal to a counted word (a corpus may hold "new_york") is that word
        with_delimiter = np.flatnonzero(pc.match_substring(words, delimiter)
                                        .to_numpy(zero_copy_only=False))
        self.ids = dict(zip(words.take(pa.array(with_delimiter)).to_pylist(),
                            with_delimiter.tolist()))

    def __len__(self):
        return self.n_base + len(self.phrases)

    def connectors(self, connector_words):
        """int16 [len]: each ID's index among ``connector_words`` or -1 (phrases are none)."""
        conn = np.full(len(self), -1, np.int16)
        if connector_words:
            found = pc.index_in(self.base, value_set=pa.array(connector_words, pa.large_string()))
            conn[:self.n_base] = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
        return conn

    def strings(self, ids):
        """{id: its string} for an array of IDs."""
        ids = np.unique(np.asarray(ids, np.int64))
        base = ids[ids < self.n_base]
        found = dict(zip(base.tolist(), self.base.take(pa.array(base)).to_pylist()))
        found.update((i, self.phrases[i - self.n_base]) for i in ids[ids >= self.n_base].tolist())
        return found

    def parts_of(self, i, string):
        return self.parts.get(i, (string,))

    def add(self, string, parts):
        """The ID of phrase ``string`` (made of the counted words ``parts``), new or not."""
        i = self.ids.get(string)
        if i is None:
            i = self.ids[string] = len(self)
            self.phrases.append(string)
            self.parts[i] = parts
        return i

    def arrow(self):
        return pa.concat_arrays([self.base, pa.array(self.phrases, pa.large_string())])


def join_stream(stream, lines, conn, sel_hi, sel_lo, sel_id, tokens_path, lines_path):
    """``stream`` (lines starting at ``lines``) with the selected pairs joined, written a
    block of lines at a time to ``tokens_path`` and ``lines_path`` (memory-mapped, the
    pages behind dropped). Returns the joined stream (memory-mapped)."""
    first_of = np.zeros(conn.shape[0], np.bool_)
    last_of = np.zeros(conn.shape[0], np.bool_)
    first_of[(sel_hi >> np.uint64(32)).astype(np.int64)] = True
    last_of[(sel_hi & np.uint64(0xFFFFFFFF)).astype(np.int64)] = True
    out = np.lib.format.open_memmap(tokens_path, mode="w+", dtype=np.uint32,
                                    shape=(stream.shape[0],))
    out_lines = np.lib.format.open_memmap(lines_path, mode="w+", dtype=np.int64,
                                          shape=(lines.shape[0],))
    tokens, starts = np.asarray(stream), np.asarray(lines)
    written, joined_starts = np.asarray(out), np.asarray(out_lines)
    pages = [MappedPages(a) for a in (stream, lines, out, out_lines)]
    n_out = 0
    for l0, l1 in line_blocks(starts):
        n_out = join_tokens(tokens, starts, l0, l1, conn, first_of, last_of, sel_hi, sel_lo,
                            sel_id, written, n_out, joined_starts)
        for p, upto in zip(pages, (starts[l1], l1, n_out, l1)):
            p.drop(upto)
    joined_starts[-1] = n_out
    out.flush()
    out_lines.flush()
    return out[:n_out]


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
    stream, lines_path, reused = base_encoding(workdir, manifest, words, threads, progress)
    encode_seconds = time.time() - t0
    vocab = Vocabulary(words, delimiter)
    del words
    tmp = os.path.join(pdir, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, exist_ok=True)
    rows = []
    pass_figures = []
    for k in range(passes):
        t_pass = time.time()
        if counts is None:  # the stream changed: its words' counts
            counts = stream_counts(stream, len(vocab))
        lines = np.load(lines_path, mmap_mode="r")
        train_words = int(stream.shape[0])
        thr = thresholds[k]
        conn = vocab.connectors(connector_words)
        eligible = counts >= min_count
        if scorer == "default" and thr > 0:
            # n_ab <= min(n_a, n_b), so a score above thr needs n_a, n_b < train_words / thr
            eligible &= counts < train_words / thr * 1.001 + 1
        eligible &= conn < 0
        counter = count_pairs(stream, lines, eligible.astype(np.uint8), conn,
                              int(counts[eligible].sum()), threads,
                              os.path.join(tmp, f"pairs-{k + 1}"), memory_rows, chunk_tokens)
        try:
            selected, distinct = _select(counter, counts, scorer, thr, min_count, train_words)
            spills = counter.spills
        finally:
            counter.close()
        sel_hi, sel_lo = selected[0], selected[1]
        sel_id, pass_rows = _name(vocab, selected, connector_words, delimiter, k + 1)
        rows.extend(pass_rows)
        joined = 0
        if sel_hi.shape[0]:
            stream = join_stream(stream, lines, conn, sel_hi, sel_lo, sel_id,
                                 os.path.join(tmp, f"stream-{k + 1}.npy"),
                                 os.path.join(tmp, f"lines-{k + 1}.npy"))
            lines_path = os.path.join(tmp, f"lines-{k + 1}.npy")
            joined = train_words - stream.shape[0]
            counts = None
            # The pass before's joined stream is read no more: free its disk now, not
            # at the end (pass 1 read the base encoding, which is kept).
            for name in (f"stream-{k}.npy", f"lines-{k}.npy"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(tmp, name))
        del lines
        pass_figures.append({"pass": k + 1, "threshold": thr, "train_words": train_words,
                             "distinct_pairs": distinct, "phrases": len(pass_rows),
                             "joined_occurrences": int(joined), "spills": spills,
                             "seconds": round(time.time() - t_pass, 3)})
        log.info("pass %d: %d phrases above %g (%d occurrences joined, %d distinct pairs)",
                 k + 1, len(pass_rows), thr, joined, distinct)
    if counts is None:
        counts = stream_counts(stream, len(vocab))
    record = _write_result(workdir, manifest, vocab, counts, stream, lines_path, rows, {
        "passes": passes, "thresholds": thresholds, "min_count": min_count,
        "delimiter": delimiter, "scorer": scorer, "connectors": list(connector_words)},
        pass_figures, encode_seconds, reused, started)
    shutil.rmtree(tmp, ignore_errors=True)
    if write_text:
        t0 = time.time()
        write_text_file(workdir, write_text)
        record["figures"]["write_text_seconds"] = round(time.time() - t0, 3)
    return record


def _select(counter, counts, scorer, threshold, min_count, train_words):
    """The pairs scoring above ``threshold``, partition by partition: ((hi, lo, count,
    score) sorted by (hi, lo), the number of distinct pairs)."""
    sel = [[], [], [], []]
    distinct = 0
    for hi, lo, n in counter.partitions():
        distinct += hi.shape[0]
        keep = np.flatnonzero(n >= min_count)
        hi, lo, n = hi[keep], lo[keep], n[keep]
        a = (hi >> np.uint64(32)).astype(np.int64)
        b = (hi & np.uint64(0xFFFFFFFF)).astype(np.int64)
        score = score_pairs(scorer, n, counts[a], counts[b], min_count, train_words)
        keep = _above(scorer, score, threshold)
        for lst, arr in zip(sel, (hi[keep], lo[keep], n[keep], score[keep])):
            lst.append(arr)
    selected = [np.concatenate(s) if s else np.zeros(0, d)
                for s, d in zip(sel, (np.uint64, np.uint64, np.int64, np.float64))]
    order = np.lexsort((selected[1], selected[0]))
    return [arr[order] for arr in selected], distinct


def _name(vocab, selected, connector_words, delimiter, pass_number):
    """The phrase IDs of the selected pairs (new phrases added to ``vocab``) and the
    pass's rows of phrases.parquet (pairs that make the same string summed)."""
    sel_hi, sel_lo, sel_n, sel_score = selected
    sel_id = np.empty(sel_hi.shape[0], np.uint32)
    ends = vocab.strings(np.concatenate([sel_hi >> np.uint64(32),
                                         sel_hi & np.uint64(0xFFFFFFFF)]).astype(np.int64))
    pass_rows = {}
    for j, (h, l, cnt, sc) in enumerate(zip(sel_hi.tolist(), sel_lo.tolist(),
                                             sel_n.tolist(), sel_score.tolist())):
        a, b = h >> 32, h & 0xFFFFFFFF
        middle = []
        while l:
            middle.append(connector_words[(l & 0xFF) - 1])
            l >>= 8
        string = delimiter.join([ends[a], *middle, ends[b]])
        pid = vocab.add(string, vocab.parts_of(a, ends[a]) + tuple(middle)
                        + vocab.parts_of(b, ends[b]))
        sel_id[j] = pid
        row = pass_rows.get(string)
        if row is None:
            pass_rows[string] = [string, list(vocab.parts_of(pid, string)), cnt, sc,
                                 pass_number]
        else:
            row[2] += cnt
            row[3] = max(row[3], sc)
    return sel_id, list(pass_rows.values())


def _write_result(workdir, manifest, vocab, counts, stream, lines_path, rows, settings,
                  pass_figures, encode_seconds, reused, started):
    """phrases/vocab.parquet, tokens.npy (the stream renumbered by the vocabulary's order),
    line_starts.npy, phrases.parquet, then phrases.json."""
    pdir = os.path.join(workdir, PHRASES_DIR)
    table = pa.table({"word": vocab.arrow().cast(pa.string()), "count": counts})
    n_kept = int((counts > 0).sum())
    if len(vocab) == vocab.n_base and n_kept == len(vocab):
        remap = np.arange(n_kept, dtype=np.uint32)  # nothing joined: the counted order
    else:
        order = pc.sort_indices(table, sort_keys=[("count", "descending"),
                                                  ("word", "ascending")])
        order = order.to_numpy()[:n_kept]
        remap = np.zeros(len(vocab), np.uint32)
        remap[order] = np.arange(n_kept, dtype=np.uint32)
        table = table.take(order)
        del order
    try:
        write_parquet_atomic(table, os.path.join(pdir, "vocab.parquet"))
        del table
        release_arrow_memory()
        tokens_path = os.path.join(pdir, "tokens.npy")
        out = np.lib.format.open_memmap(tokens_path + ".tmp.npy", mode="w+", dtype=np.uint32,
                                        shape=(stream.shape[0],))
        tokens, renumbered = np.asarray(stream), np.asarray(out)
        pages = (MappedPages(stream), MappedPages(out))
        for lo in range(0, tokens.shape[0], BLOCK_TOKENS):
            renumbered[lo:lo + BLOCK_TOKENS] = remap[tokens[lo:lo + BLOCK_TOKENS]]
            for p in pages:
                p.drop(lo + BLOCK_TOKENS)
        out.flush()
        del out, renumbered
        os.replace(tokens_path + ".tmp.npy", tokens_path)
        lines_out = os.path.join(pdir, "line_starts.npy")
        if os.path.dirname(lines_path) == os.path.join(pdir, "tmp"):
            os.replace(lines_path, lines_out)
        else:  # the base's (no pass joined anything)
            shutil.copyfile(lines_path, lines_out)
        n_lines = int(np.load(lines_out, mmap_mode="r").shape[0]) - 1
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
              "lines": n_lines,
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


def encode_phrased(workdir, manifest, record, words, n_tokens, key):
    """The joined corpus as an encoding of ``words`` (a prefix of the phrased vocabulary,
    whose counts sum to ``n_tokens``) in ``WORKDIR/encoded/<key>/``, as ``encode.encode``
    makes it, written once a block of lines at a time. Returns (corpus, reused)."""
    from .encode import ENCODED_FORMAT, ENCODED_META, ENCODED_VERSION, EncodedCorpus

    directory = encoding_dir(workdir, key)
    if os.path.exists(os.path.join(directory, ENCODED_META)):
        return EncodedCorpus(directory), True
    started = time.time()
    pdir = os.path.join(workdir, PHRASES_DIR)
    stream = np.load(os.path.join(pdir, "tokens.npy"), mmap_mode="r")
    lines = np.load(os.path.join(pdir, "line_starts.npy"), mmap_mode="r")
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.makedirs(directory)
        out = np.lib.format.open_memmap(os.path.join(directory, "tokens.npy"), mode="w+",
                                        dtype=np.uint32, shape=(n_tokens,))
        sentences = SentenceStartsWriter(os.path.join(directory, "sentence_starts.npy"),
                                         corpus_mod.MAX_SENTENCE_WORDS)
        tokens, starts, kept = np.asarray(stream), np.asarray(lines), np.asarray(out)
        pages = (MappedPages(stream), MappedPages(lines), MappedPages(out))
        ends = np.empty(0, np.int64)
        n = 0
        limit = np.uint32(len(words))
        for l0, l1 in line_blocks(starts):
            if ends.shape[0] < l1 - l0:
                ends = np.empty(l1 - l0, np.int64)
            n = keep_below(tokens, starts, l0, l1, limit, kept, n, ends)
            if n < 0:
                break
            sentences.add_breaks(ends[:l1 - l0])
            for p, upto in zip(pages, (starts[l1], l1, n)):
                p.drop(upto)
        if n != n_tokens:
            sentences.close()
            raise InputDataError(f"{pdir} does not hold the tokens its vocabulary counts: "
                                 f"run `bigw2v phrases {workdir}` again")
        out.flush()
        del out, kept
        n_sentences = sentences.finish(n)
    except OSError as e:
        raise write_failed(f"cannot write the encoded corpus in {directory}", e) from None
    write_json(os.path.join(directory, ENCODED_META), {
        "format": ENCODED_FORMAT, "version": ENCODED_VERSION, "key": key, "tokens": int(n),
        "sentences": n_sentences, "vocab_size": len(words),
        "max_sentence_words": corpus_mod.MAX_SENTENCE_WORDS,
        "normalize": manifest["settings"].get("normalize"),
        "phrase_set": record["phrase_set"], "seconds": round(time.time() - started, 3)})
    return EncodedCorpus(directory), False


def phrased_key(plain_key, record):
    return hashlib.sha256(f"{plain_key} {record['phrase_set']}".encode()).hexdigest()[:16]


def write_text_file(workdir, path):
    """The joined corpus as text: a line per input line, tokens separated by a space."""
    pdir = os.path.join(workdir, PHRASES_DIR)
    words = (pq.read_table(os.path.join(pdir, "vocab.parquet"), columns=["word"])
             .column("word").combine_chunks().cast(pa.large_string()))
    stream = np.load(os.path.join(pdir, "tokens.npy"), mmap_mode="r")
    lines = np.load(os.path.join(pdir, "line_starts.npy"), mmap_mode="r")
    _, offset_buf, data_buf = words.buffers()
    offsets = np.frombuffer(offset_buf, np.int64, len(words) + 1, words.offset * 8)
    arena = (np.frombuffer(data_buf, np.uint8) if data_buf is not None
             else np.zeros(0, np.uint8))
    lengths = np.diff(offsets)
    tokens, starts = np.asarray(stream), np.asarray(lines)
    pages = (MappedPages(stream), MappedPages(lines))
    try:
        f = open(path, "wb") if path != "-" else os.fdopen(os.dup(1), "wb")
        with f:
            for l0, l1 in line_blocks(starts, 1 << 22):
                seg = tokens[starts[l0]:starts[l1]]
                out = np.empty(int(lengths[seg].sum()) + seg.shape[0] + (l1 - l0), np.uint8)
                n = render_lines(tokens, starts, l0, l1, offsets, arena, out)
                f.write(out[:n].data)
                for p, upto in zip(pages, (starts[l1], l1)):
                    p.drop(upto)
    except OSError as e:
        raise write_failed(f"cannot write {path}", e) from None
