"""Lookup tables the kernels sample from: subsampling, noise words, Huffman paths.

All are functions of the vocabulary counts and the settings, so a resumed run
rebuilds exactly the same tables instead of storing them.
"""

import numpy as np
from numba import njit

from .kernels import KEEP_ALWAYS, MAX_EXP


def keep_thresholds(counts, sample):
    """Subsampling: the probability of keeping each word, as a 32-bit threshold.

    The C tool's formula: with t = sample * (total words), a word seen c times
    is kept with probability (sqrt(c / t) + 1) * t / c, capped at 1. Returned
    as uint32 so the kernel compares integers; KEEP_ALWAYS marks words that are
    never dropped (no random draw spent on them).
    """
    counts = np.asarray(counts, dtype=np.float64)
    thresholds = np.full(counts.shape[0], KEEP_ALWAYS, dtype=np.uint32)
    if sample <= 0 or counts.shape[0] == 0:
        return thresholds
    t = sample * counts.sum()
    keep_prob = (np.sqrt(counts / t) + 1.0) * t / counts
    scaled = np.floor(keep_prob * 2.0**32)
    dropped = scaled < float(KEEP_ALWAYS)
    thresholds[dropped] = scaled[dropped].astype(np.uint32)
    return thresholds


def noise_distribution(counts, power=0.75):
    """The unigram distribution raised to ``power`` and renormalised (float64)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()


@njit(cache=True)
def _build_alias(probs, accept, alias):
    n = probs.shape[0]
    scaled = probs * n
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    n_small = 0
    n_large = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[n_small] = i
            n_small += 1
        else:
            large[n_large] = i
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        g = large[n_large - 1]
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            n_large -= 1
            small[n_small] = g
            n_small += 1
    # Leftovers are 1.0 up to rounding: always accept.
    for i in range(n_large):
        accept[large[i]] = 1.0
        alias[large[i]] = large[i]
    for i in range(n_small):
        accept[small[i]] = 1.0
        alias[small[i]] = small[i]


def noise_alias_table(counts, power=0.75):
    """Walker/Vose alias table for drawing noise words from unigram^power.

    Returns (accept uint32 [V], alias int32 [V]): draw a slot i uniformly, keep
    it when 32 random bits are below accept[i], else take alias[i]. Exact for
    any vocabulary size with 8 bytes per word, where the C tool's 1e8-entry
    table costs 400 MB and rounds rare words to zero or one slot.
    """
    probs = noise_distribution(counts, power)
    accept = np.empty(probs.shape[0], dtype=np.float64)
    alias = np.empty(probs.shape[0], dtype=np.int32)
    _build_alias(probs, accept, alias)
    accept_bits = np.minimum(np.floor(accept * 2.0**32), float(KEEP_ALWAYS))
    return accept_bits.astype(np.uint32), alias


@njit(cache=True)
def _huffman_parents(counts):
    """The C tool's O(V) Huffman construction over counts sorted descending."""
    v = counts.shape[0]
    weight = np.empty(2 * v - 1, dtype=np.int64)
    weight[:v] = counts
    parent = np.zeros(2 * v - 1, dtype=np.int64)
    is_right = np.zeros(2 * v - 1, dtype=np.uint8)
    leaf = v - 1  # next smallest unused leaf (counts are descending)
    node = v      # next smallest unused inner node (created in ascending order)
    for a in range(v - 1):
        picked = np.empty(2, dtype=np.int64)
        for k in range(2):
            if leaf >= 0 and (node >= v + a or weight[leaf] < weight[node]):
                picked[k] = leaf
                leaf -= 1
            else:
                picked[k] = node
                node += 1
        weight[v + a] = weight[picked[0]] + weight[picked[1]]
        parent[picked[0]] = v + a
        parent[picked[1]] = v + a
        is_right[picked[1]] = 1
    return parent, is_right


@njit(cache=True)
def _huffman_paths(parent, is_right, v):
    root = 2 * v - 2
    lengths = np.zeros(v, dtype=np.int64)
    for w in range(v):
        b = w
        while b != root:
            lengths[w] += 1
            b = parent[b]
    starts = np.zeros(v + 1, dtype=np.int64)
    for w in range(v):
        starts[w + 1] = starts[w] + lengths[w]
    nodes = np.empty(starts[v], dtype=np.int32)
    codes = np.empty(starts[v], dtype=np.uint8)
    for w in range(v):
        # Walk leaf -> root, filling the path back to front so it reads root -> leaf.
        pos = starts[w + 1] - 1
        b = w
        while b != root:
            codes[pos] = is_right[b]
            nodes[pos] = parent[b] - v  # inner nodes numbered 0..v-2, root = v-2
            b = parent[b]
            pos -= 1
    return starts, nodes, codes


def huffman_paths(counts):
    """Huffman tree over the vocabulary for hierarchical softmax.

    ``counts`` must be sorted descending. Returns (starts int64 [V+1], nodes
    int32, codes uint8): word w's path from the root is nodes[starts[w]:starts[w+1]]
    with the branch taken at each node in codes; frequent words get short paths.
    """
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    v = counts.shape[0]
    if v < 2:
        raise ValueError("hierarchical softmax needs at least two words")
    if np.any(counts[1:] > counts[:-1]):
        raise ValueError("counts must be sorted in descending order")
    parent, is_right = _huffman_parents(counts)
    return _huffman_paths(parent, is_right, v)


def empty_paths():
    """Path arrays for a run without hierarchical softmax (the kernel ignores them)."""
    return (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.uint8))


def longest_path(path_starts):
    """The length of the longest Huffman path (0 without paths): sizes the kernels' scratch.

    Computed once here rather than in every chunk: a scan of V words per
    chunk adds up at a million words and thousands of chunks per epoch.
    """
    return int(np.diff(path_starts).max(initial=0))


def sigmoid_table(points=1024):
    """Sigmoid and log-sigmoid at points+1 evenly spaced scores over [-MAX_EXP, MAX_EXP].

    Row 0 is sigmoid(x), row 1 is log(sigmoid(x)); the kernels interpolate
    linearly between points, which at 1024 points is accurate to about 2e-6.
    """
    x = np.linspace(-MAX_EXP, MAX_EXP, points + 1)
    table = np.empty((2, points + 1), dtype=np.float64)
    table[0] = 1.0 / (1.0 + np.exp(-x))
    table[1] = -np.log1p(np.exp(-x))
    return table
