"""The Numba training kernel against the plain-Python reference (tests/reference_w2v.py).

The reference makes the same random draws as the kernel, so on a tiny corpus
the two must produce the same weights up to float32 rounding. Tolerance: the
kernel is compiled with fastmath, so its dot products are summed in another
order (vectorised) and its updates may use fused multiply-adds; each such
operation differs by about one float32 ulp (6e-8 relative). Over a few
hundred updates of weights of size ~0.1-1 this stays near 1e-7 absolute
(measured over the seven variants below: max |kernel - reference| 1.4e-7). A real difference in the
algorithm (one draw, one context word, a learning rate off by a few percent)
moves weights by 1e-4 or more, so rtol=1e-5, atol=1e-6 separates the two with
a wide margin on either side.
"""

from collections import Counter

import numpy as np
import pytest

from bigw2v import kernels, tables
import reference_w2v as ref

RTOL, ATOL = 1e-5, 1e-6
DIM = 12


def run_kernel_chunk(chunk, epoch, corpus, tab, settings, weights):
    """One chunk through the Numba kernel: (loss, terms, trained)."""
    loss, terms, trained = ref.run_kernel([chunk], epoch, corpus, tab, settings, weights)
    return float(loss[0]), int(terms[0]), int(trained[0])


def tiny_corpus():
    """20 words with Zipf counts; 12 sentences of 0 to 15 words in 3 chunks."""
    rng = np.random.default_rng(3)
    counts = np.round(1000 / np.arange(1, 21)).astype(np.int64)  # descending, as a vocabulary
    lengths = [7, 1, 12, 0, 3, 9, 2, 15, 5, 11, 4, 8]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.choice(20, size=starts[-1], p=counts / counts.sum()).astype(np.uint32)
    tokens[starts[1]] = 19  # the one-word sentence: a rare word, never dropped
    chunk_starts = np.array([0, 3, 10, 12], dtype=np.int64)
    return counts, ref.Corpus(tokens, starts, chunk_starts)


def start_weights(vocab, dim=DIM, seed=5):
    """Random inputs, outputs and nodes (not zero, so every gradient path is non-trivial).

    One inner node near the root is scaled up so that it scores beyond +-6 for
    most inputs: hierarchical softmax must skip it.
    """
    rng = np.random.default_rng(seed)
    inputs = (rng.random((vocab, dim)) - 0.5).astype(np.float32)
    outputs = (rng.random((vocab, dim)) - 0.5).astype(np.float32)
    nodes = (rng.random((vocab - 1, dim)) - 0.5).astype(np.float32)
    nodes[vocab - 4] *= 40
    return ref.Weights(inputs, outputs, nodes)


VARIANTS = {
    "sg-ns": dict(skipgram=True, negative=5, hs=False, cbow_mean=True),
    "sg-hs": dict(skipgram=True, negative=0, hs=True, cbow_mean=True),
    "sg-ns-hs": dict(skipgram=True, negative=3, hs=True, cbow_mean=True),
    "cbow-ns-sum": dict(skipgram=False, negative=5, hs=False, cbow_mean=False),
    "cbow-ns-mean": dict(skipgram=False, negative=5, hs=False, cbow_mean=True),
    "cbow-hs": dict(skipgram=False, negative=0, hs=True, cbow_mean=True),
    "cbow-ns-hs-sum": dict(skipgram=False, negative=3, hs=True, cbow_mean=False),
}


def assert_same_weights(kernel, reference):
    for name in ("inputs", "outputs", "nodes"):
        np.testing.assert_allclose(getattr(kernel, name), getattr(reference, name),
                                   rtol=RTOL, atol=ATOL, err_msg=name)


def test_reference_random_stream_starts_where_the_kernel_does():
    for seed, epoch, chunk in [(0, 0, 0), (1, 0, 5), (7, 3, 1), (2**63 - 1, 9, 123456)]:
        assert ref.chunk_seed(seed, epoch, chunk) == int(kernels.chunk_seed(seed, epoch, chunk))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_chunk_matches_the_reference(variant):
    counts, corpus = tiny_corpus()
    settings = ref.Settings(window=3, alpha_start=0.05, alpha_end=0.005, epochs=3, seed=11,
                            **VARIANTS[variant])
    tab = ref.Tables.build(counts, sample=0.01, hs=settings.hs)
    kernel = start_weights(len(counts))
    reference = kernel.copy()
    stats = Counter()
    epoch = 1  # past the first epoch: the learning rate is well inside its schedule
    for chunk in range(len(corpus.chunk_starts) - 1):
        loss, terms, trained = ref.train_chunk(chunk, epoch, corpus, tab, settings, reference,
                                               stats)
        k_loss, k_terms, k_trained = run_kernel_chunk(chunk, epoch, corpus, tab, settings, kernel)
        assert (k_terms, k_trained) == (terms, trained)
        assert k_loss == pytest.approx(loss, rel=1e-5)
        assert_same_weights(kernel, reference)
    # The weights did move (the comparison is not of two untouched copies) ...
    start = start_weights(len(counts))
    assert np.abs(reference.inputs - start.inputs).max() > 1e-2
    # ... and the corpus exercised the rarer cases of the algorithm.
    assert stats["dropped"] > 0 and stats["empty window"] > 0
    assert all(stats[f"reach {r}"] > 0 for r in (1, 2, 3))
    if settings.negative:
        assert stats["noise = centre"] > 0
    if settings.hs:
        assert stats["saturated"] > 0


# --- hierarchical softmax ----------------------------------------------------

def test_words_sharing_a_code_prefix_share_its_inner_nodes():
    """Each proper code prefix leads to one inner node; the V-1 nodes are all reached so."""
    rng = np.random.default_rng(0)
    counts = np.sort(rng.integers(1, 60, 31))[::-1]  # with ties
    starts, nodes, codes = tables.huffman_paths(counts)
    node_of_prefix = {}
    for w in range(len(counts)):
        path_nodes = nodes[starts[w]:starts[w + 1]]
        path_codes = codes[starts[w]:starts[w + 1]]
        for k, node in enumerate(path_nodes):
            prefix = tuple(path_codes[:k])
            assert node_of_prefix.setdefault(prefix, int(node)) == node, (w, prefix)
    assert node_of_prefix[()] == len(counts) - 2  # the root
    assert sorted(node_of_prefix.values()) == list(range(len(counts) - 1))
    # Two words' paths agree up to the node where their codes first differ.
    for a in range(len(counts)):
        for b in range(a + 1, len(counts)):
            ca, cb = codes[starts[a]:starts[a + 1]], codes[starts[b]:starts[b + 1]]
            na, nb = nodes[starts[a]:starts[a + 1]], nodes[starts[b]:starts[b + 1]]
            split = next(k for k in range(min(len(ca), len(cb))) if ca[k] != cb[k])
            assert np.array_equal(na[:split + 1], nb[:split + 1])
            assert len(set(na[split + 1:]) & set(nb[split + 1:])) == 0


@pytest.mark.parametrize("skipgram", [True, False])
def test_hs_step_labels_and_updates(skipgram):
    """A two-word sentence "c w", window 1: two HS steps, each readable in one coordinate.

    Node rows start at zero, so every score is 0 and each node on the centre's
    path moves by (label - 1/2) * alpha * (the context's row), label = 1 - code.
    The context rows are e1 (for w, used when c is the centre) and e0 (for c),
    so column 1 of the node matrix is the first step alone and column 0 the
    second. One node of c's path is given a score of +-50: it must be skipped
    (no update) while its loss still counts.
    """
    counts = np.array([9, 7, 5, 4, 3, 2, 2, 1], dtype=np.int64)
    c, w = 6, 5  # paths: root, left, right, then c goes left twice more, w right
    corpus = ref.Corpus(np.array([c, w], dtype=np.uint32), np.array([0, 2], dtype=np.int64),
                        np.array([0, 1], dtype=np.int64))
    settings = ref.Settings(skipgram=skipgram, window=1, negative=0, hs=True, cbow_mean=True,
                            alpha_start=0.1, alpha_end=0.1, epochs=1, seed=1)
    tab = ref.Tables.build(counts, sample=0, hs=True)
    v, alpha = len(counts), np.float32(0.1)
    weights = ref.Weights(np.zeros((v, 2), np.float32), np.zeros((v, 2), np.float32),
                          np.zeros((v - 1, 2), np.float32))
    weights.inputs[w] = [0, 1]
    weights.inputs[c] = [1, 0]
    path_c, path_w = tab.path(c), tab.path(w)
    assert len(path_c) == 5 and len(path_w) == 4 and path_c[0][0] == path_w[0][0] == v - 2
    saturated, sat_label = path_c[-1]
    assert saturated not in [n for n, _ in path_w]
    weights.nodes[saturated, 1] = 50.0 if sat_label == 1.0 else -50.0  # confidently right
    reference = weights.copy()

    loss, terms, trained = run_kernel_chunk(0, 0, corpus, tab, settings, weights)

    expected = np.zeros((v - 1, 2), np.float32)
    expected[saturated, 1] = weights.nodes[saturated, 1]  # untouched
    for node, label in path_c:  # first step: centre c, context row e1
        if node != saturated:
            expected[node, 1] = np.float32(label - 0.5) * alpha
    for node, label in path_w:  # second step: centre w, context row e0
        expected[node, 0] = np.float32(label - 0.5) * alpha
    np.testing.assert_array_equal(weights.nodes, expected)
    # Labels are 1 - code: a left branch (code 0) pulls its node towards the context.
    for node, label in path_c:
        if node != saturated:
            assert (weights.nodes[node, 1] > 0) == (label == 1.0)
    assert (trained, terms) == (2, len(path_c) + len(path_w))
    assert loss == pytest.approx((terms - 1) * np.log(2), rel=1e-5)  # log 2 per score of 0
    # Nodes shared by both paths: c's row gets the first step's update back
    # through them (+ where the codes agree, - at the node where they split).
    shared = [n for n, _ in path_c if n in dict(path_w)]
    agree = sum(dict(path_c)[n] == dict(path_w)[n] for n in shared)
    assert (len(shared), agree) == (4, 3)
    assert weights.inputs[c][1] == pytest.approx(0.25 * alpha**2 * (agree - 1), rel=1e-5)
    assert weights.inputs[c][0] == 1.0 and weights.inputs[w][0] == 0.0

    ref.train_chunk(0, 0, corpus, tab, settings, reference)
    assert_same_weights(weights, reference)
