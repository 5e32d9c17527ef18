"""Warm start (``--init-from``): begin a run from an older model's vectors.

Rows are matched by word, so the vocabulary may grow, shrink or reorder:
a word the old model knows gets its old input vector and, when both runs
use negative sampling, its old output vector; a new word keeps the fresh
initialisation (random input row, zero output row). Hierarchical-softmax
node vectors are never carried over: the Huffman tree is rebuilt from the
new counts, so node i of the old tree means nothing in the new one.
"""

import logging
import os

import numpy as np

from .errors import MissingInputError, UsageError
from .vectors import load

log = logging.getLogger("bigw2v")

ROW_BLOCK = 65536


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


def warm_start(old_modeldir, words, dim, input_vectors, output_vectors):
    """Copy the old model's vectors of known words into the new weights.

    ``output_vectors`` is None when the new run has no negative sampling.
    Returns a summary dict for the run's figures.
    """
    old = load(old_modeldir)  # checks the model is complete and consistent
    if old.dim != dim:
        raise UsageError(f"--init-from {old_modeldir} has vectors of dim {old.dim}, "
                         f"this run has --dim {dim}: they must match")
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
    log.info("warm start from %s: %d of %d words keep their vectors, %d are new",
             old_modeldir, new_rows.shape[0], len(words), len(words) - new_rows.shape[0])
    return {"from": old_modeldir, "known_words": int(new_rows.shape[0]),
            "new_words": int(len(words) - new_rows.shape[0]),
            "old_vocab_size": len(old.words), "output_vectors_copied": outputs_copied}
