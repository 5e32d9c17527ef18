"""A plain-Python specification of one chunk of bigw2v training, for the tests.

This is word2vec as docs/quality.md describes it (the C tool's algorithm) with
bigw2v's deliberate differences, written to be read rather than to be fast:

- The chunk's random stream is xorshift64* started from a splitmix64 hash of
  (seed, epoch, chunk). The reference makes the kernel's draws in the kernel's
  order, so the two must agree on every subsampling decision, window reach and
  noise word:
    1. per sentence, one draw per word that subsampling may drop (in order);
    2. then the noise words of the first centre, even if no word was kept;
    3. per centre: the noise words of the *next* centre (drawn one ahead),
       then this centre's window reach.
- The learning rate falls linearly from alpha_start to alpha_end over all
  epochs, by the position of each sentence's first word in the stream.
- Subsampling removes words before windows are formed; windows reach
  ``window - below(window)`` (uniform in 1..window) kept words to each side and
  never leave the sentence.
- Skip-gram, negative sampling: the window is one minibatch. Every context
  word's input row is scored against the same outputs (the centre, label 1, and
  ``negative`` noise words, label 0) from one snapshot of the rows; output rows
  are updated from those scores; input rows get their summed gradient at the end
  of the window. A noise word equal to the centre is skipped (no loss, no update).
- Skip-gram, hierarchical softmax: one context word at a time (as the C tool)
  against the centre's Huffman path (label = 1 - code), node rows updated after
  each context word; nodes scoring beyond +-MAX_EXP get no update (their loss
  still counts). Input gradients are applied at the end of the window, after
  negative sampling when both are on.
- CBOW: the hidden vector is the sum (or mean) of the context rows; all its
  outputs (the Huffman path's nodes, then the centre and the noise words) are
  scored from the rows as they are, then each in turn adds its gradient to the
  hidden gradient and is updated (the C tool scores each output after updating
  the previous one: the same unless a row repeats, i.e. a noise word drawn
  twice); the whole, undivided hidden gradient is added to every context word.
- Sigmoid and loss come from the interpolated table (``tables.sigmoid_table``),
  saturating beyond +-MAX_EXP.

Weights are numpy float32 arrays (updated in place), scalars Python floats, so
the rounding follows the kernel's closely. ``run_kernel`` at the end is the one
place where the tests call the Numba kernel.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bigw2v import kernels, tables

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MAX_EXP = 6.0
KEEP_ALWAYS = 0xFFFFFFFF


# --- the random stream -------------------------------------------------------

def splitmix64(x):
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def chunk_seed(seed, epoch, chunk):
    s = splitmix64(seed)
    s = splitmix64(s ^ epoch)
    s = splitmix64(s ^ chunk)
    return s if s != 0 else GOLDEN


class RandomStream:
    """xorshift64*, one 64-bit number per draw."""

    def __init__(self, state):
        self.state = state

    def bits(self):
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & MASK64
        x ^= x >> 27
        self.state = x
        return (x * 0x2545F4914F6CDD1D) & MASK64

    def below(self, n):
        """An integer in [0, n) from the high 32 bits of one draw."""
        return ((self.bits() >> 32) * n) >> 32

    def keeps(self, threshold):
        """Subsampling: keep a word when 32 random bits are below its threshold."""
        if threshold == KEEP_ALWAYS:
            return True  # never dropped: no draw spent
        return (self.bits() & 0xFFFFFFFF) < threshold

    def noise_word(self, accept, alias):
        """Walker alias draw: a slot from the high bits, accepted by the low bits."""
        bits = self.bits()
        slot = ((bits >> 32) * len(accept)) >> 32
        return slot if (bits & 0xFFFFFFFF) < accept[slot] else int(alias[slot])


# --- the model's pieces ---------------------------------------------------------

@dataclass
class Corpus:
    tokens: np.ndarray           # uint32
    sentence_starts: np.ndarray  # int64, S+1
    chunk_starts: np.ndarray     # int64, C+1 (sentence indices)


@dataclass
class Tables:
    keep_threshold: np.ndarray
    noise_accept: np.ndarray
    noise_alias: np.ndarray
    sigmoid: np.ndarray
    path_starts: np.ndarray
    path_nodes: np.ndarray
    path_codes: np.ndarray

    @classmethod
    def build(cls, counts, sample, hs, noise_counts=None):
        """The tables a run with these counts would use (noise from ``noise_counts`` if given)."""
        accept, alias = tables.noise_alias_table(counts if noise_counts is None else noise_counts)
        paths = tables.huffman_paths(counts) if hs else tables.empty_paths()
        return cls(tables.keep_thresholds(counts, sample), accept, alias,
                   tables.sigmoid_table(), *paths)

    def path(self, word):
        """[(inner node, label)] from the root to ``word``; label 1 means code 0 (left)."""
        first, last = self.path_starts[word], self.path_starts[word + 1]
        return [(int(n), 1.0 - int(c))
                for n, c in zip(self.path_nodes[first:last], self.path_codes[first:last])]


@dataclass
class Settings:
    skipgram: bool
    window: int
    negative: int
    hs: bool
    cbow_mean: bool
    alpha_start: float
    alpha_end: float
    epochs: int
    seed: int


@dataclass
class Weights:
    inputs: np.ndarray   # float32 [V, d]
    outputs: np.ndarray  # float32 [V, d], negative sampling
    nodes: np.ndarray    # float32 [V-1, d], hierarchical softmax

    def copy(self):
        return Weights(self.inputs.copy(), self.outputs.copy(), self.nodes.copy())


def sigmoid_and_loss(f, label, table):
    """(sigmoid(f), -log P(label | f)), linearly interpolated in the table."""
    if f >= MAX_EXP:
        return 1.0, (0.0 if label == 1.0 else f)
    if f <= -MAX_EXP:
        return 0.0, (-f if label == 1.0 else 0.0)
    n = table.shape[1] - 1
    pos = (f + MAX_EXP) * (n / (2 * MAX_EXP))
    i = int(pos)
    frac = pos - i
    s = table[0, i] + frac * (table[0, i + 1] - table[0, i])
    log_s = table[1, i] + frac * (table[1, i + 1] - table[1, i])
    return s, (-log_s if label == 1.0 else f - log_s)


# --- one chunk ---------------------------------------------------------------------

def train_chunk(chunk, epoch, corpus, tab, settings, weights, stats=None):
    """Train sentences chunk_starts[chunk]:chunk_starts[chunk+1] in place.

    Returns (loss sum, loss terms, words kept). ``stats`` (a Counter) collects
    how often the rarer cases happened, so tests can show they were exercised.
    """
    stats = Counter() if stats is None else stats
    rng = RandomStream(chunk_seed(settings.seed, epoch, chunk))
    n_tokens = len(corpus.tokens)
    a0, a1 = float(settings.alpha_start), float(settings.alpha_end)
    total = {"loss": 0.0, "terms": 0}
    trained = 0
    for s in range(corpus.chunk_starts[chunk], corpus.chunk_starts[chunk + 1]):
        start, stop = corpus.sentence_starts[s], corpus.sentence_starts[s + 1]
        progress = (epoch * n_tokens + start) / (n_tokens * settings.epochs)
        alpha = float(np.float32(a0 - (a0 - a1) * progress))

        words = [int(w) for w in corpus.tokens[start:stop] if rng.keeps(tab.keep_threshold[w])]
        stats["dropped"] += (stop - start) - len(words)
        trained += len(words)

        next_noise = [rng.noise_word(tab.noise_accept, tab.noise_alias)
                      for _ in range(settings.negative)]
        for i, centre in enumerate(words):
            noise = next_noise
            if i + 1 < len(words):
                next_noise = [rng.noise_word(tab.noise_accept, tab.noise_alias)
                              for _ in range(settings.negative)]
            reach = settings.window - rng.below(settings.window)
            stats[f"reach {reach}"] += 1
            contexts = [words[j] for j in range(max(0, i - reach), min(len(words), i + reach + 1))
                        if j != i]
            if not contexts:
                stats["empty window"] += 1
                continue
            # Negative sampling's outputs: the centre (label 1), then noise (label 0),
            # leaving out noise words equal to the centre.
            targets = [(centre, 1.0)] + [(w, 0.0) for w in noise if w != centre]
            stats["noise = centre"] += 1 + len(noise) - len(targets)
            if settings.skipgram:
                skipgram_window(centre, contexts, targets, alpha, tab, settings, weights,
                                total, stats)
            else:
                cbow_window(centre, contexts, targets, alpha, tab, settings, weights,
                            total, stats)
    return total["loss"], total["terms"], trained


def score(x, y, label, alpha, skip_saturated, tab, total, stats):
    """The gradient coefficient (label - sigmoid(x.y)) * alpha, as float32; adds the loss."""
    f = float(np.dot(x, y))
    s, loss = sigmoid_and_loss(f, label, tab.sigmoid)
    total["loss"] += loss
    total["terms"] += 1
    if skip_saturated and abs(f) >= MAX_EXP:
        stats["saturated"] += 1
        return np.float32(0.0)
    return np.float32((label - s) * alpha)


def minibatch_step(xs, out_matrix, targets, alpha, skip_saturated, tab, grads, total, stats):
    """Every input row in ``xs`` against every (row, label) in ``targets``, one snapshot.

    All scores first; then the input gradients (added to ``grads``) and the
    output rows' updates, both from the rows as they were when scored.
    """
    g = [[score(x, out_matrix[row], label, alpha, skip_saturated, tab, total, stats)
          for row, label in targets] for x in xs]
    for b in range(len(xs)):
        for o, (row, _) in enumerate(targets):
            grads[b] += g[b][o] * out_matrix[row]
    for o, (row, _) in enumerate(targets):
        for b, x in enumerate(xs):
            out_matrix[row] += g[b][o] * x


def skipgram_window(centre, contexts, targets, alpha, tab, settings, weights, total, stats):
    """Each context word's input row predicts the centre word."""
    dim = weights.inputs.shape[1]
    grads = [np.zeros(dim, np.float32) for _ in contexts]
    if settings.hs:
        path = tab.path(centre)
        for b, word in enumerate(contexts):  # one context word at a time
            minibatch_step([weights.inputs[word]], weights.nodes, path, alpha, True, tab,
                           [grads[b]], total, stats)
    if settings.negative > 0:
        xs = [weights.inputs[word] for word in contexts]
        minibatch_step(xs, weights.outputs, targets, alpha, False, tab, grads, total, stats)
    for word, grad in zip(contexts, grads):
        weights.inputs[word] += grad


def cbow_window(centre, contexts, targets, alpha, tab, settings, weights, total, stats):
    """The sum or mean of the context rows predicts the centre word."""
    hidden = np.zeros(weights.inputs.shape[1], np.float32)
    for word in contexts:
        hidden += weights.inputs[word]
    if settings.cbow_mean:
        hidden /= len(contexts)
    grad = np.zeros_like(hidden)
    outputs = []
    if settings.hs:
        outputs += [(weights.nodes, row, label, True) for row, label in tab.path(centre)]
    if settings.negative > 0:
        outputs += [(weights.outputs, row, label, False) for row, label in targets]
    # Every output scored first (the rows as they were), then each in turn
    # adds its gradient and is updated: a repeated row is updated twice, its
    # second gradient read after the first update.
    g = [score(hidden, matrix[row], label, alpha, skip_saturated, tab, total, stats)
         for matrix, row, label, skip_saturated in outputs]
    for (matrix, row, _, _), g_out in zip(outputs, g):
        grad += g_out * matrix[row]
        matrix[row] += g_out * hidden
    for word in contexts:  # the undivided gradient, to every context word
        weights.inputs[word] += grad


# --- the kernel under test: called from this one place ------------------------------

def run_kernel(chunk_ids, epoch, corpus, tab, settings, weights):
    """Train ``chunk_ids`` with the Numba kernel, weights in place.

    Returns per-chunk (loss sums, loss terms, words kept) arrays.
    """
    ids = np.asarray(chunk_ids, dtype=np.int64)
    loss = np.zeros(ids.shape[0], dtype=np.float64)
    terms = np.zeros(ids.shape[0], dtype=np.int64)
    trained = np.zeros(ids.shape[0], dtype=np.int64)
    kernels.train_chunks(
        ids, int(epoch),
        kernels.CorpusArrays(corpus.tokens, corpus.sentence_starts, corpus.chunk_starts),
        kernels.SamplingTables(tab.keep_threshold, tab.noise_accept, tab.noise_alias,
                               tab.sigmoid, tab.path_starts, tab.path_nodes, tab.path_codes,
                               tables.longest_path(tab.path_starts)),
        kernels.Weights(weights.inputs, weights.outputs, weights.nodes),
        kernels.KernelParams(bool(settings.skipgram), int(settings.window),
                             int(settings.negative), bool(settings.hs), bool(settings.cbow_mean),
                             np.float32(settings.alpha_start), np.float32(settings.alpha_end),
                             int(settings.epochs), int(settings.seed)),
        loss, terms, trained)
    return loss, terms, trained
