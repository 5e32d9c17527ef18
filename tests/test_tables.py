import heapq

import numpy as np
import pytest

from bigw2v import tables
from bigw2v.kernels import KEEP_ALWAYS


def test_keep_thresholds_follow_the_c_formula():
    counts = np.array([100000, 5000, 300, 20, 1], dtype=np.int64)
    sample = 1e-3
    t = sample * counts.sum()
    expected = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)
    got = tables.keep_thresholds(counts, sample)
    for prob, threshold in zip(expected, got):
        if prob >= 1.0:
            assert threshold == KEEP_ALWAYS
        else:
            assert threshold == pytest.approx(prob * 2**32, abs=1.0)
    # The most frequent word is dropped most often; rare words are always kept.
    assert got[0] < got[1] and got[-1] == KEEP_ALWAYS


def test_sample_zero_keeps_everything():
    assert np.all(tables.keep_thresholds(np.array([10**9, 5]), 0.0) == KEEP_ALWAYS)


def implied_distribution(accept, alias):
    """The exact probability of each outcome of an alias-table draw."""
    n = accept.shape[0]
    keep = accept.astype(np.float64) / 2**32
    probs = keep / n
    np.add.at(probs, alias, (1.0 - keep) / n)
    return probs


@pytest.mark.parametrize("vocab_size", [1, 2, 7, 1000])
def test_alias_table_is_exactly_unigram_to_the_075(vocab_size):
    rng = np.random.default_rng(vocab_size)
    counts = np.sort(rng.integers(1, 10**6, vocab_size))[::-1]
    accept, alias = tables.noise_alias_table(counts)
    target = counts**0.75 / np.sum(counts**0.75)
    np.testing.assert_allclose(implied_distribution(accept, alias), target, atol=1e-9)


def huffman_cost(counts):
    heap = list(counts)
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


def test_huffman_paths_form_an_optimal_prefix_code():
    rng = np.random.default_rng(3)
    counts = np.sort(rng.zipf(1.5, 500).astype(np.int64))[::-1]
    starts, nodes, codes = tables.huffman_paths(counts)
    lengths = np.diff(starts)
    v = counts.shape[0]
    # Every path starts at the root (the last inner node) and stays among inner nodes.
    assert np.all(nodes[starts[:-1]] == v - 2)
    assert nodes.min() >= 0 and nodes.max() <= v - 2
    # Prefix-free and complete: distinct codes, Kraft sum exactly 1.
    words = {tuple(codes[starts[w]:starts[w + 1]]) for w in range(v)}
    assert len(words) == v
    assert np.sum(2.0 ** -lengths) == pytest.approx(1.0)
    # Optimal: the weighted path length equals that of a textbook Huffman code.
    assert int(np.sum(lengths * counts)) == huffman_cost(counts.tolist())
    # Frequent words get paths no longer than rarer ones.
    assert np.all(np.diff(lengths) >= 0)


def test_huffman_rejects_unsorted_or_tiny_vocabularies():
    with pytest.raises(ValueError):
        tables.huffman_paths(np.array([1, 5, 3]))
    with pytest.raises(ValueError):
        tables.huffman_paths(np.array([4]))


def test_longest_path_is_the_deepest_word():
    counts = np.array([1000, 10, 5, 1, 1, 1], np.int64)
    starts, nodes, codes = tables.huffman_paths(counts)
    depths = np.diff(starts)
    assert tables.longest_path(starts) == depths.max() >= 3 and depths[0] == 1
    assert tables.longest_path(tables.empty_paths()[0]) == 0
