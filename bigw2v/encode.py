"""Pass 2, first half: the corpus as token IDs in a memory-mapped file.

The text is read again and every word becomes its row in the vocabulary;
words not in it (under min-count) are dropped before any window is formed,
as the C tool does. The result lives in ``WORKDIR/encoded/<key>/``:

- ``tokens.npy``: uint32 [N], N = the summed counts of the vocabulary, so
  the file is preallocated and costs exactly 4 bytes per token;
- ``sentence_starts.npy``: int64 [S+1] offsets; a newline ends a sentence and a
  sentence longer than ``MAX_SENTENCE_WORDS`` kept words is cut;
- ``encoded.json``: what the encoding was made from, written last: a directory
  without it is unfinished and is rebuilt.

The key hashes the vocabulary and the count manifest's inputs, so training
again with the same min-count reuses the file and a new count makes a new one.
"""

import hashlib
import json
import mmap
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import corpus
from .atomic import write_json
from .errors import InputDataError, MissingInputError, write_failed
from .pool import ordered_map
from .progress import progress_bar
from .wordtable import WordTable
from .workdir import ENCODED_META, encoding_dir, npy_header

ENCODED_FORMAT = "bigw2v-encoded"
ENCODED_VERSION = 1
RELEASE_EVERY = 1 << 24  # tokens written between two drops of their mapped pages

def encode_block(block, table):
    """Encode one block of text (explicit state: the vocabulary's ``WordTable``).

    Returns (ids uint32 [n] of the known words, line_ends int64): line_ends[k]
    is how many ids precede the k-th newline of the block. A word is looked
    up by its canonical form, the one counting stored it under.
    """
    return table.encode_block(block)


def sentence_pieces(bounds, max_words):
    """Starts of the sentences between consecutive ``bounds``, each cut every max_words.

    ``bounds`` is sorted and unique; the sentence from bounds[i] to bounds[i+1]
    becomes ceil(length / max_words) pieces. The last bound starts nothing.
    """
    starts, stops = bounds[:-1], bounds[1:]
    pieces = -(-(stops - starts) // max_words)  # ceil; >= 1 since bounds are unique
    first = np.repeat(starts, pieces)
    rank = np.arange(first.shape[0]) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    return (first + rank * max_words).astype(np.int64)


def sentence_starts_from_breaks(breaks, n_tokens, max_words):
    """Sentence offsets from newline positions, long sentences cut at max_words.

    ``breaks`` are token positions where a newline ended a sentence (duplicates
    and empty sentences are fine). Returns int64 [S+1] from 0 to n_tokens.
    The whole-array form of ``SentenceStartsWriter``.
    """
    bounds = np.unique(np.concatenate([[0, n_tokens], np.asarray(breaks, np.int64)]))
    bounds = bounds[(bounds >= 0) & (bounds <= n_tokens)]
    return np.append(sentence_pieces(bounds, max_words), n_tokens).astype(np.int64)


class SentenceStartsWriter:
    """Sentence offsets computed block by block and written to ``path`` (an int64 .npy).

    A billion-word corpus has tens of millions of lines: holding their ends
    until the end would cost 8 bytes a line and a sort. Breaks arrive in
    token order, so each block's sentences are final as soon as the block is
    taken; they go to a raw file next to ``path`` and are copied under an
    .npy header at the end (the count is known only then). Memory: one
    block's breaks. The result equals ``sentence_starts_from_breaks``.
    """

    COPY_ROWS = 1 << 22

    def __init__(self, path, max_words):
        self.path = path
        self.max_words = max_words
        self._raw_path = path + ".raw.tmp"
        self._raw = open(self._raw_path, "wb")
        self.rows = 0
        self.last = 0  # where the sentence still open starts

    def add_breaks(self, breaks):
        """Token positions where newlines ended sentences, non-decreasing across calls."""
        breaks = np.asarray(breaks, np.int64)
        breaks = breaks[breaks > self.last]
        if breaks.shape[0] == 0:
            return
        bounds = np.unique(np.concatenate([[self.last], breaks]))
        starts = sentence_pieces(bounds, self.max_words)
        self._raw.write(starts.tobytes())
        self.rows += starts.shape[0]
        self.last = int(bounds[-1])

    def finish(self, n_tokens):
        """Close the last sentence at ``n_tokens``, write ``path``; return the sentence count."""
        self.add_breaks(np.array([n_tokens], np.int64))
        self._raw.write(np.array([n_tokens], np.int64).tobytes())
        self.rows += 1
        self._raw.close()
        out = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.int64, shape=(self.rows,))
        raw = np.memmap(self._raw_path, dtype=np.int64, mode="r", shape=(self.rows,))
        for lo in range(0, self.rows, self.COPY_ROWS):
            out[lo:lo + self.COPY_ROWS] = raw[lo:lo + self.COPY_ROWS]
        out.flush()
        del out, raw
        os.remove(self._raw_path)
        return self.rows - 1

    def close(self):
        self._raw.close()


def encoding_key(words, manifest):
    h = hashlib.sha256()
    h.update(b"%d\n" % corpus.MAX_SENTENCE_WORDS)
    for inp in manifest["inputs"]:
        h.update(("%s\t%d\t%d\n" % (inp["path"], inp["size"], inp["mtime_ns"])).encode())
    h.update(b"\x00")
    normalize = manifest.get("settings", {}).get("normalize")
    if normalize:  # (only then: encodings made before normalisation existed keep their keys)
        h.update(b"normalize %s\x00" % normalize.encode())
    # One update of the words joined (each followed by LF): the same bytes as word by
    # word, so the same keys as before, at a tenth of the time.
    if len(words):
        h.update("\n".join(words).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def drop_mapped_pages(array, upto, released_byte):
    """madvise(DONTNEED) the pages of memory-mapped ``array`` that hold items [:upto].

    Starts at byte ``released_byte`` of the mapping (what an earlier call already
    dropped) and returns the new end. The data is safe: for a shared file
    mapping the pages (dirty ones included) stay in the page cache; they only
    stop counting in this process's memory. A no-op where madvise is missing.
    """
    mapping = getattr(array, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise"):
        return released_byte
    base = array.offset % mmap.ALLOCATIONGRANULARITY  # where the array starts in the map
    end = (base + array.itemsize * int(upto)) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > released_byte:
        mapping.madvise(mmap.MADV_DONTNEED, released_byte, end - released_byte)
        return end
    return released_byte


class MappedPages:
    """The pages of a memory-mapped array dropped behind a moving position
    (``drop_mapped_pages`` and its state): a pass over a file-backed array would
    otherwise leave all of it resident. A no-op for an array in memory."""

    def __init__(self, array):
        self.array = array
        self.released_byte = 0

    def drop(self, upto):
        """Drop the pages of items [:upto] (those of earlier calls are gone already)."""
        self.released_byte = drop_mapped_pages(self.array, upto, self.released_byte)


class EncodedCorpus:
    """The encoded corpus, memory-mapped read-only."""

    def __init__(self, directory):
        self.directory = directory
        with open(os.path.join(directory, ENCODED_META)) as f:
            self.meta = json.load(f)
        self.tokens = np.load(os.path.join(directory, "tokens.npy"), mmap_mode="r")
        self._pages = MappedPages(self.tokens)
        self._released_upto = 0
        # Mapped, not loaded: a billion-token corpus has tens of millions of sentences.
        # np.asarray drops the memmap subclass (which Numba does not take), keeping the mapping.
        self.sentence_starts = np.asarray(
            np.load(os.path.join(directory, "sentence_starts.npy"), mmap_mode="r"))

    def release(self, upto):
        """Drop the mapped pages of tokens[:upto] from this process's memory.

        The pages stay in the page cache and fault back in when read again (next
        epoch), but no longer count in the process's RSS: an epoch over a 4 GB
        token file would otherwise leave all 4 GB resident. Only call it between
        kernel calls, for tokens already trained in this epoch.
        """
        if upto < self._released_upto:
            self._pages = MappedPages(self.tokens)  # a new epoch started over
        self._released_upto = upto
        self._pages.drop(upto)

    @property
    def n_tokens(self):
        return int(self.tokens.shape[0])


def input_files(manifest, workdir):
    """The counted inputs, checked unchanged since counting."""
    settings = manifest["settings"]
    inputs = []
    for rec in manifest["inputs"]:
        path = rec["path"]
        if path == "-":
            raise InputDataError(
                "the workdir was counted from standard input, which cannot be read a "
                "second time for training: save the text to a file and count that")
        try:
            size, mtime_ns = corpus.current_state(path)
        except (OSError, MissingInputError):
            raise InputDataError(
                f"input {path} was counted but is gone: re-run `bigw2v count`") from None
        if size != rec["size"] or mtime_ns != rec["mtime_ns"]:
            raise InputDataError(
                f"input {path} changed since it was counted: re-run `bigw2v count` on {workdir}")
        inputs.append(corpus.expand_inputs([path], settings.get("text_column"),
                                           settings.get("text_field"))[0])
    return inputs


def encode(workdir, manifest, words, n_tokens, threads=1, progress=True,
           block_bytes=corpus.BLOCK_BYTES, key=None):
    """Encode the counted corpus with vocabulary ``words``; reuse a cached encoding.

    ``n_tokens`` is the number of corpus tokens whose word is in ``words`` (the
    sum of their counts): the token file is preallocated to exactly that size,
    and any disagreement means the corpus changed since counting. ``key``: the
    caller's ``encoding_key(words, manifest)``, if it has it.
    Returns (EncodedCorpus, whether the cached encoding was reused).
    """
    if key is None:
        key = encoding_key(words, manifest)
    directory = encoding_dir(workdir, key)
    if os.path.exists(os.path.join(directory, ENCODED_META)):
        return EncodedCorpus(directory), True
    inputs = input_files(manifest, workdir)
    return encode_slice(inputs, words, directory, n_tokens, threads=threads, progress=progress,
                        block_bytes=block_bytes, key=key, recount_hint=workdir,
                        normalize=manifest["settings"].get("normalize")), False


def encode_slice(inputs, words, directory, n_tokens, threads=1, progress=True,
                 block_bytes=corpus.BLOCK_BYTES, key=None, recount_hint=None, normalize=None,
                 at_most=False):
    """Encode ``inputs`` (a slice of the corpus, or all of it) into ``directory``.

    The unit an engine runs per slice, with explicit state: the inputs
    (``corpus.InputFile`` or ``corpus.FilePart``), the vocabulary ``words``
    and ``n_tokens``, the number of their tokens that are in it (the token
    file is preallocated to exactly that). ``at_most``: ``n_tokens`` only
    bounds that number (a slice's share of the vocabulary's tokens is not
    counted anywhere): the token file is preallocated sparse and cut to the
    tokens written. ``recount_hint`` names the workdir in the error when the
    text disagrees with that number. ``normalize``: the count's normalisation
    (count.json's ``settings.normalize``), applied to the text the same way.
    Returns the ``EncodedCorpus``.
    """
    where = f" on {recount_hint}" if recount_hint else ""
    started = time.time()
    position, n_sentences = write_encoding(
        inputs, WordTable.from_words(words, normalize), directory, "sentence_starts.npy",
        corpus.MAX_SENTENCE_WORDS, n_tokens, threads, progress, block_bytes, where, at_most)
    meta = {"format": ENCODED_FORMAT, "version": ENCODED_VERSION, "key": key,
            "tokens": position, "sentences": n_sentences,
            "vocab_size": len(words), "max_sentence_words": corpus.MAX_SENTENCE_WORDS,
            "normalize": normalize,
            "seconds": round(time.time() - started, 3)}
    write_json(os.path.join(directory, ENCODED_META), meta)
    return EncodedCorpus(directory)


def write_encoding(inputs, table, directory, starts_name, longest, n_tokens, threads, progress,
                   block_bytes, where, at_most=False):
    """Encode ``inputs`` with ``table`` into a new ``directory``: ``tokens.npy`` and the
    starts file ``starts_name`` (runs cut at ``longest`` tokens). Returns (tokens, runs).

    ``n_tokens``: how many tokens the text holds (``at_most``: at most; the file is then
    cut to those written); ``where`` ends the error when the text has fewer.
    """
    shutil.rmtree(directory, ignore_errors=True)
    tokens_path = os.path.join(directory, "tokens.npy")
    try:
        os.makedirs(directory)
        tokens = np.lib.format.open_memmap(tokens_path, mode="w+", dtype=np.uint32,
                                           shape=(n_tokens,))
        starts = SentenceStartsWriter(os.path.join(directory, starts_name), longest)
    except OSError as e:
        raise write_failed(f"cannot write the encoded corpus in {directory}", e) from None
    try:
        position = write_tokens(inputs, table, tokens, starts, threads, progress, block_bytes,
                                where)
        if position != n_tokens and not at_most:
            raise InputDataError(f"the corpus has fewer words than were counted: "
                                 f"re-run `bigw2v count`{where}")
    except BaseException:
        starts.close()
        raise
    tokens.flush()
    del tokens
    try:
        if position < n_tokens:
            shorten_npy(tokens_path, position)
        return position, starts.finish(position)
    except OSError as e:
        raise write_failed(f"cannot write the encoded corpus in {directory}", e) from None


def shorten_npy(path, n):
    """Cut the 1-d .npy file at ``path`` to its first ``n`` items, in place.

    Its header keeps its length: numpy pads the first axis's length in the
    header so that files can grow or shrink along it.
    """
    array = np.load(path, mmap_mode="r")
    offset, dtype = array.offset, array.dtype
    del array
    header = npy_header(dtype, (n,))
    if len(header) != offset:
        raise OSError(f"{path}: the header of {n} items would not fit where it is")
    with open(path, "r+b") as f:
        f.write(header)
        f.truncate(offset + n * dtype.itemsize)


def write_tokens(inputs, table, tokens, sentences, threads, progress, block_bytes, where):
    """Encode the inputs' blocks in order into ``tokens`` and ``sentences``; return the count.

    One table for all threads: encoding only reads it (the Numba kernel
    releases the GIL).
    """
    n_tokens = tokens.shape[0]
    position = 0
    pages, released_at = MappedPages(tokens), 0
    bar = progress_bar(sum(inp.size for inp in inputs), "encode", unit="B", enabled=progress)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="encode") if threads > 1 else None
    try:
        for inp in inputs:
            done_bytes = bar.n
            for (ids, line_ends), read in ordered_map(
                    pool, lambda block_read: (encode_block(block_read[0], table), block_read[1]),
                    corpus.input_blocks(inp, block_bytes), 2 * threads):
                if position + ids.shape[0] > n_tokens:
                    raise InputDataError("the corpus has more words than were counted: "
                                         f"re-run `bigw2v count`{where}")
                tokens[position:position + ids.shape[0]] = ids
                if line_ends.shape[0]:
                    sentences.add_breaks(line_ends + position)
                position += ids.shape[0]
                # Written pages would otherwise all stay resident: 4 GB for a billion tokens.
                if position - released_at >= RELEASE_EVERY:
                    pages.drop(position)
                    released_at = position
                bar.update(done_bytes + read - bar.n)
            # A newline between files: a sentence never spans two inputs.
            sentences.add_breaks(np.array([position], dtype=np.int64))
            bar.update(done_bytes + inp.size - bar.n)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
    return position
