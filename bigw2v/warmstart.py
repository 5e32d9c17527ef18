"""Warm start (``--init-from``): begin a run from older vectors, matched by word.

The source is a finished bigw2v model directory or a word2vec file (the C
tool's binary or text format, gensim's, fastText's ``.vec``; compressed too).
Rows are matched by word, so the vocabulary may grow, shrink or reorder: a
word the source knows gets its vector (for a model, when both runs use
negative sampling, its output vector too; a word2vec file has no output
vectors); a new word keeps the fresh initialisation (random input row, zero
output row). Hierarchical-softmax node vectors are never carried over: the
Huffman tree is rebuilt from the new counts, so node i of the old tree means
nothing in the new one. A word a file holds twice starts from its first row.

A file is streamed a block of rows at a time straight into the new weights:
memory is one block, however big the file.
"""

import logging
import os

import numpy as np

from .errors import MissingInputError, UsageError
from .modeldir import finished_model
from .vectors import ROW_BLOCK, load_model_dir

log = logging.getLogger("bigw2v")



def matching_rows(new_words, old_words):
    """(new_rows, old_rows) int64 arrays of the words both vocabularies hold."""
    old_index = {}
    for i, w in enumerate(old_words):
        old_index.setdefault(w, i)
    pairs = [(i, old_index[w]) for i, w in enumerate(new_words) if w in old_index]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new_rows, old_rows = np.array(pairs, dtype=np.int64).T
    return new_rows, old_rows


def copy_rows(target, source, target_rows, source_rows):
    """target[target_rows] = source[source_rows], a block at a time (bounded memory)."""
    for start in range(0, target_rows.shape[0], ROW_BLOCK):
        t = target_rows[start:start + ROW_BLOCK]
        s = source_rows[start:start + ROW_BLOCK]
        target[t] = source[s]


def _dim_error(source, source_dim, dim):
    return UsageError(f"--init-from {source} has vectors of dim {source_dim}, "
                      f"this run has --dim {dim}: they must match")


def check_source(source, dim):
    """Refuse, before anything is written, a source that is not usable with --dim ``dim``.

    A directory must hold a finished model of that dim; a file must be a
    word2vec file (its header and first record are read) of that dim.
    """
    if os.path.isdir(source):
        info = finished_model(source)
        if info is None:
            raise MissingInputError(f"--init-from {source} is not a bigw2v model (no finished "
                                    "model.json there)")
        if info.get("dim") != dim:
            raise _dim_error(source, info.get("dim"), dim)
        return
    if not os.path.exists(source):
        raise MissingInputError(f"--init-from {source} does not exist (a bigw2v model "
                                "directory or a word2vec file was expected)")
    from .w2vfile import read_header
    _, source_dim, _ = read_header(source)
    if source_dim != dim:
        raise _dim_error(source, source_dim, dim)


def warm_start(source, words, dim, input_vectors, output_vectors):
    """Copy the source's vectors of known words into the new weights.

    ``source`` is a model directory or a word2vec file; ``output_vectors`` is
    None when the new run has no negative sampling. Returns a summary dict
    for the run's figures (model.json's ``warm_start``).
    """
    if os.path.isdir(source):
        summary = _from_model(source, words, dim, input_vectors, output_vectors)
    else:
        summary = _from_file(source, words, dim, input_vectors, output_vectors is not None)
    known = summary["known_words"]
    log.info("warm start from %s: %d of %d words keep their vectors, %d are new",
             source, known, len(words), len(words) - known)
    return summary


def _from_model(old_modeldir, words, dim, input_vectors, output_vectors):
    old = load_model_dir(old_modeldir)  # checks the model is complete and consistent
    if old.dim != dim:
        raise _dim_error(old_modeldir, old.dim, dim)
    new_rows, old_rows = matching_rows(words, old.words)
    copy_rows(input_vectors, old.vectors, new_rows, old_rows)
    outputs_copied = False
    old_outputs = os.path.join(old_modeldir, "output_vectors.npy")
    if output_vectors is not None:
        if os.path.isfile(old_outputs):
            try:
                old_out = np.load(old_outputs, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise MissingInputError(f"cannot read {old_outputs}: {e}") from None
            if old_out.shape == old.vectors.shape:
                copy_rows(output_vectors, old_out, new_rows, old_rows)
                outputs_copied = True
        if not outputs_copied:
            log.warning("%s has no negative-sampling output vectors: they start fresh",
                        old_modeldir)
    return {"from": old_modeldir, "source": "model", "known_words": int(new_rows.shape[0]),
            "new_words": int(len(words) - new_rows.shape[0]),
            "old_vocab_size": len(old.words), "output_vectors_copied": outputs_copied}


def _from_file(path, words, dim, input_vectors, has_outputs):
    """Stream a word2vec file into the rows of the words it shares with ``words``."""
    from .w2vfile import Word2VecReader
    with Word2VecReader(path) as reader:
        if reader.dim != dim:
            raise _dim_error(path, reader.dim, dim)
        index = dict(zip(reversed(words), range(len(words) - 1, -1, -1)))
        taken = np.zeros(len(words), dtype=bool)
        block = np.empty((max(1, min(ROW_BLOCK, reader.count)), dim), dtype=np.float32)
        while reader.rows_read < reader.count:
            first = reader.rows_read
            got = reader.read_into(block)
            rows = np.fromiter((index.get(w, -1) for w in got), dtype=np.int64, count=len(got))
            source = np.flatnonzero(rows >= 0)
            # The first row of a word wins: in this block (np.unique's first index), and
            # over blocks (taken).
            target, first_seen = np.unique(rows[source], return_index=True)
            source = source[first_seen]
            fresh = ~taken[target]
            source, target = source[fresh], target[fresh]
            order = np.argsort(target)  # ascending rows: sequential writes to the memmap
            input_vectors[target[order]] = block[source[order]]
            taken[target] = True
            if reader.rows_read == first:
                break
        rows_read, binary = reader.rows_read, reader.binary
    known = int(taken.sum())
    if has_outputs:
        log.info("%s is a word2vec file, without output vectors: they start fresh", path)
    return {"from": path, "source": f"word2vec {'binary' if binary else 'text'} file",
            "known_words": known, "new_words": int(len(words) - known),
            "old_vocab_size": rows_read, "output_vectors_copied": False}
