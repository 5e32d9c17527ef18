import numpy as np
import pytest

from bigw2v import kernels, tables


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_window_update_is_one_minibatch_gradient_step():
    rng = np.random.default_rng(0)
    dim, vocab = 8, 10
    # Scores stay inside [-6, 6], where the kernel's sigmoid is not saturated.
    inputs = (0.5 * rng.normal(size=(vocab, dim))).astype(np.float32)
    outputs = (0.5 * rng.normal(size=(vocab, dim))).astype(np.float32)
    contexts = np.array([1, 2, 2, 5], dtype=np.int64)  # a word may repeat in a window
    out_rows = np.array([3, 7, 0], dtype=np.int64)
    labels = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    alpha = np.float32(0.1)

    x = inputs[contexts].astype(np.float64)
    y = outputs[out_rows].astype(np.float64)
    scores = x @ y.T
    g = (labels[None, :] - sigmoid(scores)) * alpha
    expected_grad = g @ y
    expected_outputs = outputs.astype(np.float64).copy()
    np.add.at(expected_outputs, out_rows, g.T @ x)
    expected_loss = -np.sum(np.log(np.where(labels > 0.5, sigmoid(scores), sigmoid(-scores))))

    grad = np.zeros((4, dim), dtype=np.float32)
    work = np.empty((4, 3), dtype=np.float32)
    loss, terms = kernels._window_update(inputs, contexts, 4, outputs, out_rows, labels, 3,
                                         alpha, False, tables.sigmoid_table(), work, grad)
    assert np.abs(scores).max() < 6
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-4, atol=1e-6)
    assert terms == 12
    assert loss == pytest.approx(expected_loss, rel=1e-4)


def test_window_update_ignores_noise_equal_to_target_and_saturated_hs_nodes():
    dim = 4
    inputs = np.full((3, dim), 2.0, dtype=np.float32)   # scores of 16 with the ones row
    outputs = np.ones((3, dim), dtype=np.float32)
    outputs[2] = 0.1
    before = outputs.copy()
    grad = np.zeros((1, dim), dtype=np.float32)
    work = np.empty((1, 3), dtype=np.float32)
    contexts = np.array([0], dtype=np.int64)
    # label -1: a noise word that equals the target; skipped entirely.
    loss, terms = kernels._window_update(inputs, contexts, 1, outputs,
                                         np.array([1], np.int64), np.array([-1.0], np.float32),
                                         1, np.float32(0.1), False, tables.sigmoid_table(), work, grad)
    assert terms == 0 and loss == 0.0 and np.all(grad == 0) and np.array_equal(outputs, before)
    # Hierarchical softmax skips scores beyond +-6 (row 0), but trains row 2 (score 0.8).
    loss, terms = kernels._window_update(inputs, contexts, 1, outputs,
                                         np.array([0, 2], np.int64), np.array([0.0, 1.0], np.float32),
                                         2, np.float32(0.1), True, tables.sigmoid_table(), work, grad)
    assert terms == 2  # the skipped node still counts in the loss
    assert np.array_equal(outputs[0], before[0]) and not np.array_equal(outputs[2], before[2])


def test_sigmoid_table_is_accurate_and_saturates_like_the_c_tool():
    table = tables.sigmoid_table()
    for x in np.linspace(-5.99, 5.99, 977):
        for label in (0.0, 1.0):
            s, loss = kernels._sigmoid_and_loss(np.float32(x), label, table)
            x64 = np.float64(np.float32(x))
            assert s == pytest.approx(sigmoid(x64), abs=1e-5)
            expected = -np.log(sigmoid(x64) if label else sigmoid(-x64))
            assert loss == pytest.approx(expected, abs=1e-5)
    assert kernels._sigmoid_and_loss(np.float32(7.0), 1.0, table) == (1.0, 0.0)
    assert kernels._sigmoid_and_loss(np.float32(-7.0), 1.0, table) == (0.0, 7.0)
    assert kernels._sigmoid_and_loss(np.float32(7.0), 0.0, table) == (1.0, 7.0)


def hidden_step(hidden, outputs, rows, labels, alpha):
    """(new outputs, hidden gradient) in float64: all rows scored, then updated in turn."""
    expected = outputs.astype(np.float64).copy()
    scores = [(lab - sigmoid(hidden @ expected[r])) * alpha for r, lab in zip(rows, labels)]
    grad = np.zeros(hidden.shape[0])
    for r, g in zip(rows, scores):
        grad += g * expected[r]
        expected[r] += g * hidden
    return expected, grad


@pytest.mark.parametrize("rows", [[4, 1], [4, 1, 4]], ids=["distinct", "repeated"])
def test_hidden_update_matches_a_numpy_step(rows):
    rng = np.random.default_rng(1)
    dim = 6
    hidden = rng.normal(size=dim).astype(np.float32)
    outputs = rng.normal(size=(5, dim)).astype(np.float32)
    rows = np.array(rows, dtype=np.int64)
    labels = np.array([1.0] + [0.0] * (len(rows) - 1), dtype=np.float32)
    alpha = 0.05
    expected, grad_expected = hidden_step(hidden, outputs, rows, labels, alpha)
    grad = np.zeros(dim, dtype=np.float32)
    loss, terms = kernels._hidden_update(hidden, outputs, rows, labels, len(rows),
                                         np.float32(alpha), False, tables.sigmoid_table(), grad,
                                         np.empty(len(rows), dtype=np.float32))
    assert terms == len(rows) and loss > 0
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad, grad_expected, rtol=1e-4, atol=1e-6)


def test_hidden_update_equals_the_c_tools_order_when_no_row_repeats():
    """Scoring every output first changes nothing unless a row repeats (the C tool's
    order scores each output after updating the one before)."""
    rng = np.random.default_rng(2)
    hidden = rng.normal(size=8).astype(np.float32)
    outputs = rng.normal(size=(6, 8)).astype(np.float32)
    rows = np.array([5, 0, 3], dtype=np.int64)
    labels = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    sequential = outputs.astype(np.float64).copy()
    for r, lab in zip(rows, labels):
        g = (lab - sigmoid(hidden @ sequential[r])) * 0.05
        sequential[r] += g * hidden
    kernels._hidden_update(hidden, outputs, rows, labels, 3, np.float32(0.05), False,
                           tables.sigmoid_table(), np.zeros(8, dtype=np.float32),
                           np.empty(3, dtype=np.float32))
    np.testing.assert_allclose(outputs, sequential, rtol=1e-5, atol=1e-6)
    repeated = np.array([5, 0, 5], dtype=np.int64)
    snapshot, _ = hidden_step(hidden, outputs, repeated, labels, 0.05)
    in_turn = outputs.astype(np.float64).copy()
    for r, lab in zip(repeated, labels):
        g = (lab - sigmoid(hidden @ in_turn[r])) * 0.05
        in_turn[r] += g * hidden
    assert np.abs(snapshot[5] - in_turn[5]).max() > 1e-6  # the repeat is where they differ


def test_cbow_context_rows_are_summed_and_updated_two_at_a_time_with_repeats():
    """The hidden layer sums the first n rows listed (an odd count included), and the
    update reaches each listed row once per listing: a row listed twice in a pair, twice."""
    rng = np.random.default_rng(4)
    matrix = rng.normal(size=(6, 7)).astype(np.float32)
    rows = np.array([3, 3, 1, 4, 0, 5], dtype=np.int64)  # the 6th is past n_rows
    total = np.full(7, 99.0, dtype=np.float32)  # overwritten, not added to
    kernels._sum_rows(matrix, rows, 5, total)
    np.testing.assert_allclose(total, matrix[rows[:5]].sum(axis=0), rtol=1e-6)
    change = rng.normal(size=7).astype(np.float32)
    expected = matrix.astype(np.float64).copy()
    for r in rows[:5]:
        expected[r] += change
    kernels._add_to_rows(matrix, rows, 5, change)
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(matrix[[2, 5]], expected[[2, 5]].astype(np.float32))  # untouched


def small_problem(vocab=50, dim=16, n_tokens=20000, sentence=100, chunk=20, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.integers(5, 1000, vocab))[::-1].astype(np.int64)
    tokens = rng.choice(vocab, size=n_tokens, p=counts / counts.sum()).astype(np.uint32)
    sentence_starts = np.arange(0, n_tokens + 1, sentence, dtype=np.int64)
    n_sent = sentence_starts.shape[0] - 1
    chunk_starts = np.append(np.arange(0, n_sent, chunk), n_sent).astype(np.int64)
    return counts, tokens, sentence_starts, chunk_starts


def run_chunks(skipgram, hs, negative, sample=1e-3, seed=7, epochs=1, problem=None):
    counts, tokens, sentence_starts, chunk_starts = problem or small_problem()
    vocab, dim = counts.shape[0], 16
    rng = np.random.default_rng(0)
    inputs = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    outputs = np.zeros((vocab, dim), np.float32)
    nodes = np.zeros((vocab - 1, dim), np.float32)
    paths = tables.huffman_paths(counts) if hs else tables.empty_paths()
    accept, alias = tables.noise_alias_table(counts)
    keep = tables.keep_thresholds(counts, sample)
    n_chunks = chunk_starts.shape[0] - 1
    ids = np.arange(n_chunks, dtype=np.int64)
    losses = []
    trained_total = 0
    for epoch in range(epochs):
        loss = np.zeros(n_chunks)
        terms = np.zeros(n_chunks, np.int64)
        trained = np.zeros(n_chunks, np.int64)
        kernels.train_chunks(
            ids, epoch, kernels.CorpusArrays(tokens, sentence_starts, chunk_starts),
            kernels.SamplingTables(keep, accept, alias, tables.sigmoid_table(), *paths,
                                   tables.longest_path(paths[0])),
            kernels.Weights(inputs, outputs, nodes),
            kernels.KernelParams(skipgram, 3, negative, hs, True, np.float32(0.05),
                                 np.float32(0.0001), epochs, seed),
            loss, terms, trained)
        losses.append(loss.sum() / terms.sum())
        trained_total += trained.sum()
    return inputs, outputs, nodes, losses, trained_total, tokens.shape[0] * epochs


@pytest.mark.parametrize("skipgram", [True, False])
@pytest.mark.parametrize("hs,negative", [(False, 5), (True, 0), (True, 3)])
def test_every_model_variant_trains_and_the_loss_falls(skipgram, hs, negative):
    inputs, outputs, nodes, losses, _, _ = run_chunks(skipgram, hs, negative, epochs=4)
    assert np.all(np.isfinite(inputs))
    assert losses[-1] < losses[0]
    assert (np.abs(outputs).sum() > 0) == (negative > 0)
    assert (np.abs(nodes).sum() > 0) == hs


def test_subsampling_drops_frequent_words_at_the_expected_rate():
    problem = small_problem(vocab=20, n_tokens=50000)
    counts, tokens = problem[0], problem[1]
    sample = 1e-2
    keep = tables.keep_thresholds(counts, sample).astype(np.float64) / 2**32
    keep = np.minimum(keep, 1.0)
    expected = np.sum(keep[tokens])
    *_, trained, offered = run_chunks(True, False, 5, sample=sample, problem=problem)
    assert offered == 50000 and trained < offered
    assert trained == pytest.approx(expected, rel=0.02)


def test_chunks_are_reproducible_at_a_fixed_seed():
    import numba
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = run_chunks(True, False, 5, seed=11)
        b = run_chunks(True, False, 5, seed=11)
        c = run_chunks(True, False, 5, seed=12)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def disjoint_problem(n_chunks=16, sentences=8, length=40, seed=3):
    """Two vocabularies that never meet, in alternate chunks, each with its own Huffman tree.

    Words 0..19 fill the even chunks, words 20..49 the odd ones; with hierarchical
    softmax alone (no noise words, drawn from the whole vocabulary) chunks 2k and
    2k+1 read and write disjoint rows of every matrix, so running them at the same
    time on two threads cannot change what either computes.
    """
    rng = np.random.default_rng(seed)
    groups = [np.sort(rng.integers(5, 1000, 20))[::-1], np.sort(rng.integers(5, 1000, 30))[::-1]]
    counts = np.concatenate(groups).astype(np.int64)
    first = [0, groups[0].shape[0]]
    tokens = np.concatenate([
        first[c % 2] + rng.choice(groups[c % 2].shape[0], size=sentences * length,
                                  p=groups[c % 2] / groups[c % 2].sum())
        for c in range(n_chunks)]).astype(np.uint32)
    sentence_starts = np.arange(0, tokens.shape[0] + 1, length, dtype=np.int64)
    chunk_starts = np.arange(0, n_chunks * sentences + 1, sentences, dtype=np.int64)
    (sa, na, ca), (sb, nb, cb) = (tables.huffman_paths(g) for g in groups)
    paths = (np.concatenate([sa, sb[1:] + sa[-1]]),
             np.concatenate([na, nb + (first[1] - 1)]).astype(np.int32),  # tree A has 19 nodes
             np.concatenate([ca, cb]))
    return counts, tokens, sentence_starts, chunk_starts, paths


def train_disjoint(skipgram, threads, batches, epochs=2):
    """Train ``disjoint_problem`` with ``threads`` threads, chunk ids in ``batches`` per call."""
    import numba
    counts, tokens, sentence_starts, chunk_starts, paths = disjoint_problem()
    vocab, dim = counts.shape[0], 16
    rng = np.random.default_rng(0)
    inputs = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    nodes = np.zeros((vocab - 1, dim), np.float32)
    unused = np.zeros((1, dim), np.float32)
    accept, alias = tables.noise_alias_table(counts)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(threads)
        assert numba.get_num_threads() == threads
        for epoch in range(epochs):
            for ids in batches:
                ids = np.asarray(ids, dtype=np.int64)
                n = ids.shape[0]
                kernels.train_chunks(
                    ids, epoch, kernels.CorpusArrays(tokens, sentence_starts, chunk_starts),
                    kernels.SamplingTables(tables.keep_thresholds(counts, 1e-2), accept, alias,
                                           tables.sigmoid_table(), *paths,
                                           tables.longest_path(paths[0])),
                    kernels.Weights(inputs, unused, nodes),
                    kernels.KernelParams(skipgram, 3, 0, True, True, np.float32(0.05),
                                         np.float32(0.0001), epochs, 5),
                    np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64))
    finally:
        numba.set_num_threads(before)
    return inputs, nodes


@pytest.mark.parametrize("skipgram", [True, False])
def test_chunks_on_disjoint_rows_give_the_same_bits_on_one_or_two_threads(skipgram):
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: no second thread to compare with")
    pairs = [[c, c + 1] for c in range(0, 16, 2)]  # one chunk of each vocabulary per call
    one = train_disjoint(skipgram, 1, pairs)
    two = train_disjoint(skipgram, 2, pairs)
    swapped = train_disjoint(skipgram, 2, [pair[::-1] for pair in pairs])
    for a, b, c in zip(one, two, swapped):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    # A chunk's result depends on the weights it meets, the chunk, the epoch and the
    # seed only: the even chunks alone give the first vocabulary's rows bit for bit,
    # and leave the second's as they started.
    alone = train_disjoint(skipgram, 2, [[c] for c in range(0, 16, 2)])
    start = train_disjoint(skipgram, 1, [])
    assert np.array_equal(alone[0][:20], one[0][:20]) and np.array_equal(alone[1][:19], one[1][:19])
    assert np.array_equal(alone[0][20:], start[0][20:]) and not np.any(alone[1][19:])
    assert not np.array_equal(one[0][20:], start[0][20:])  # the odd chunks did train


def test_chunk_seed_depends_on_every_part():
    seeds = {kernels.chunk_seed(s, e, c) for s in range(3) for e in range(3) for c in range(3)}
    assert len(seeds) == 27
