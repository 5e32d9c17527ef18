"""What the training kernel draws, observed through the real kernel over many windows.

Each test builds a corpus and weights in which one effect of the random
draws can be read back from the trained weights or the kernel's counters:

- windows: every word occurs once and has its own one-hot input row, the
  output rows start at zero and the only noise word is a sink word outside the
  corpus. A centre's output row is then, to first order in alpha, 0.5 * alpha
  times the sum of its context words' input rows: which columns moved tells
  which words were in its window.
- learning rate: two-word sentences of fresh words with inputs of 1 and zero
  outputs: the second centre's output row becomes exactly alpha / 2.
- noise words: sentences "k k" with window 1, each chunk its own word k. A
  noise word equal to the centre adds no loss term, so (1 + negative) * centres
  minus the loss terms counts how many of the noise draws were k.

Chi-square thresholds come from the Wilson-Hilferty approximation of the
chi-square quantile (within 2% of the exact value at these degrees of freedom),
so the tests need no scipy. Seeds are fixed: the results are deterministic.
"""

import numpy as np
import pytest

import reference_w2v as ref

WINDOW = 5
ALPHA = 1e-3
SIGNIFICANCE_Z = 3.09  # upper 0.1% point of the standard normal


def chi2_threshold(df, z=SIGNIFICANCE_Z):
    """Wilson-Hilferty: (chi2_df / df)^(1/3) is about normal, mean 1 - 2/(9 df)."""
    v = 2.0 / (9.0 * df)
    return df * (1.0 - v + z * np.sqrt(v)) ** 3


def test_chi2_threshold_matches_known_quantiles():
    # chi-square 99.9% points from the tables: df 4 -> 18.47, df 12 -> 32.91, df 30 -> 59.70
    for df, exact in [(4, 18.47), (12, 32.91), (30, 59.70)]:
        assert chi2_threshold(df) == pytest.approx(exact, rel=0.02)


def sink_noise_tables(vocab, sample=0.0):
    """Tables whose only noise word is the last word of the vocabulary (the sink)."""
    noise_counts = np.zeros(vocab, dtype=np.int64)
    noise_counts[-1] = 1
    return ref.Tables.build(np.ones(vocab, dtype=np.int64), sample=sample, hs=False,
                            noise_counts=noise_counts)


# --- windows -------------------------------------------------------------------

COLUMNS = 64  # input row of the word at corpus position p: one-hot at column p % 64


def unique_word_corpus(seed=0):
    """Sentences of 1 to 40 words, every word different (word id = corpus position)."""
    rng = np.random.default_rng(seed)
    lengths = list(rng.integers(1, 41, 150)) + [1, 2, 3]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(starts[-1])
    chunk_starts = np.append(np.arange(0, len(lengths), 8), len(lengths)).astype(np.int64)
    return ref.Corpus(np.arange(n, dtype=np.uint32), starts, chunk_starts)


@pytest.fixture(scope="module", params=["sg", "cbow"])
def observed_windows(request):
    """(corpus, {centre position: set of context offsets}, words trained) from one epoch."""
    corpus = unique_word_corpus()
    n = len(corpus.tokens)
    vocab = n + 1  # + the sink
    settings = ref.Settings(skipgram=request.param == "sg", window=WINDOW, negative=1, hs=False,
                            cbow_mean=False, alpha_start=ALPHA, alpha_end=ALPHA, epochs=1,
                            seed=5)
    inputs = np.zeros((vocab, COLUMNS), np.float32)
    inputs[np.arange(vocab), np.arange(vocab) % COLUMNS] = 1.0
    weights = ref.Weights(inputs, np.zeros((vocab, COLUMNS), np.float32),
                          np.zeros((1, COLUMNS), np.float32))
    _, _, trained = ref.run_kernel(np.arange(len(corpus.chunk_starts) - 1), 0, corpus,
                                   sink_noise_tables(vocab), settings, weights)
    out = weights.outputs[:n]
    # First-order entries are 0.5 * alpha per context word; everything else is
    # second order (through the sink's output row), far below a quarter of that.
    moved = out > 0.25 * ALPHA
    quiet = np.abs(out[~moved]).max()
    assert quiet < 0.05 * ALPHA and out[moved].min() > 0.45 * ALPHA
    windows = {}
    offsets = np.arange(-(COLUMNS // 2) + 1, COLUMNS // 2)
    for p in range(n):
        windows[p] = {int(d) for d in offsets if d != 0 and moved[p, (p + d) % COLUMNS]}
        assert moved[p].sum() == len(windows[p])  # no offset beyond the 31 read here
    return corpus, windows, int(trained.sum())


def sentence_of(corpus, p):
    s = np.searchsorted(corpus.sentence_starts, p, side="right") - 1
    return corpus.sentence_starts[s], corpus.sentence_starts[s + 1]


def test_no_window_crosses_a_sentence_boundary(observed_windows):
    corpus, windows, trained = observed_windows
    for p, offsets in windows.items():
        start, stop = sentence_of(corpus, p)
        assert all(start <= p + d < stop for d in offsets), (p, sorted(offsets))
    assert trained == len(corpus.tokens)  # each word trained once, in its own sentence
    # Every centre of a sentence of two or more words had a context.
    assert all(windows[p] for p in windows
               if sentence_of(corpus, p)[1] - sentence_of(corpus, p)[0] > 1)


def test_windows_are_all_words_within_a_reach_of_1_to_window(observed_windows):
    corpus, windows, _ = observed_windows
    for p, offsets in windows.items():
        start, stop = sentence_of(corpus, p)
        fits = [r for r in range(1, WINDOW + 1)
                if offsets == {d for d in range(-r, r + 1) if d != 0 and start <= p + d < stop}]
        assert fits, (p, sorted(offsets))


def test_window_reach_is_uniform_in_1_to_window(observed_windows):
    corpus, windows, _ = observed_windows
    reaches = []
    for p, offsets in windows.items():
        start, stop = sentence_of(corpus, p)
        if p - WINDOW >= start and p + WINDOW < stop:  # reach not cut by the sentence
            reaches.append(max(abs(d) for d in offsets))
    seen = np.bincount(reaches, minlength=WINDOW + 2)
    assert seen[0] == 0 and seen[WINDOW + 1:].sum() == 0
    expected = len(reaches) / WINDOW
    assert expected > 200
    chi2 = np.sum((seen[1:WINDOW + 1] - expected) ** 2 / expected)
    assert chi2 < chi2_threshold(WINDOW - 1), seen


# --- learning rate ---------------------------------------------------------------

def test_learning_rate_falls_linearly_by_sentence_position_over_all_epochs():
    n_sentences, epochs = 60, 3
    corpus = ref.Corpus(np.arange(2 * n_sentences, dtype=np.uint32),
                        np.arange(0, 2 * n_sentences + 1, 2, dtype=np.int64),
                        np.arange(0, n_sentences + 1, 4, dtype=np.int64))  # 4 sentences a chunk
    n, vocab = 2 * n_sentences, 2 * n_sentences + 1
    settings = ref.Settings(skipgram=True, window=2, negative=1, hs=False, cbow_mean=True,
                            alpha_start=0.04, alpha_end=0.001, epochs=epochs, seed=3)
    tab = sink_noise_tables(vocab)
    alpha0, alpha1 = float(np.float32(0.04)), float(np.float32(0.001))
    for epoch in range(epochs):
        weights = ref.Weights(np.ones((vocab, 1), np.float32), np.zeros((vocab, 1), np.float32),
                              np.zeros((1, 1), np.float32))
        ref.run_kernel(np.arange(n_sentences // 4), epoch, corpus, tab, settings, weights)
        second_words = np.arange(1, n, 2)
        alpha = 2.0 * weights.outputs[second_words, 0].astype(np.float64)
        position = epoch * n + corpus.sentence_starts[:-1]
        expected = alpha0 - (alpha0 - alpha1) * position / (n * epochs)
        # float32 rounding (of alpha, and of alpha - min_alpha) is below 1e-8; one
        # sentence further along the schedule is 2e-4 less.
        np.testing.assert_allclose(alpha, expected, rtol=1e-6, atol=1e-8)
    assert expected[-1] == pytest.approx(alpha1, abs=0.01 * (alpha0 - alpha1))


# --- noise words -------------------------------------------------------------------

def test_noise_words_are_drawn_as_count_to_the_three_quarters():
    counts = np.array([5000, 2000, 900, 400, 300, 120, 60, 30, 12, 6, 3, 1], dtype=np.int64)
    vocab, sentences, negative = len(counts), 2000, 5
    # Chunk k: `sentences` sentences "k k"; window 1, so each centre has one context.
    tokens = np.repeat(np.arange(vocab, dtype=np.uint32), 2 * sentences)
    corpus = ref.Corpus(tokens, np.arange(0, len(tokens) + 1, 2, dtype=np.int64),
                        np.arange(0, vocab * sentences + 1, sentences, dtype=np.int64))
    settings = ref.Settings(skipgram=True, window=1, negative=negative, hs=False, cbow_mean=True,
                            alpha_start=1e-4, alpha_end=1e-4, epochs=1, seed=9)
    weights = ref.Weights(np.zeros((vocab, 1), np.float32), np.zeros((vocab, 1), np.float32),
                          np.zeros((1, 1), np.float32))
    tab = ref.Tables.build(counts, sample=0, hs=False)
    _, terms, trained = ref.run_kernel(np.arange(vocab), 0, corpus, tab, settings, weights)
    centres = 2 * sentences
    assert np.all(trained == centres)
    drawn_as_centre = (1 + negative) * centres - terms  # per word k: draws that were k
    draws = negative * centres
    p = counts ** 0.75 / np.sum(counts ** 0.75)
    expected = draws * p
    chi2 = np.sum((drawn_as_centre - expected) ** 2 / (expected * (1 - p)))
    assert chi2 < chi2_threshold(vocab), np.round(drawn_as_centre / expected, 3)
