"""Pass 2: train vectors on a counted workdir (epochs, schedule, threads, output).

The trainer does everything around the kernel: picks the vocabulary, encodes
the corpus (cached), builds the sampling tables, lays out the weights as
memory-mapped ``.npy`` files in the model directory, splits each epoch into
chunks and hands batches of chunks to the parallel kernel, reporting progress
between batches. A chunk's result depends only on (weights, chunk, epoch,
seed), which is what lets an outside engine schedule chunks itself.
"""

import os
import shutil
import sys
import time
from datetime import datetime, timezone

import numba
import numpy as np

from . import kernels, tables
from .atomic import write_json
from .encode import encode
from .errors import InputDataError, OutputError, UsageError
from .progress import progress_bar
from .settings import TrainSettings
from .vocab import read_manifest, read_vocab, write_vocab

MODEL_FORMAT = "bigw2v-model"
MODEL_VERSION = 1
MODEL_FILES = ("model.json", "vocab.parquet", "vectors.npy", "output_vectors.npy",
               "hs_vectors.npy")


def select_vocab(words, counts, counted_min_count, settings):
    """The training vocabulary: words with count >= min-count, at most max-vocab of them."""
    min_count = settings.min_count if settings.min_count is not None else counted_min_count
    if min_count < counted_min_count:
        raise UsageError(
            f"--min-count {min_count} is below the {counted_min_count} the workdir was counted "
            f"with: rarer words were not kept; count again with --min-count {min_count}")
    keep = int(np.searchsorted(-counts, -min_count, side="right"))
    if settings.max_vocab is not None:
        keep = min(keep, settings.max_vocab)
    if keep == 0:
        raise InputDataError(f"no word occurs at least {min_count} times: lower --min-count")
    if settings.hs and keep < 2:
        raise InputDataError("hierarchical softmax needs at least two words in the vocabulary")
    return words[:keep], counts[:keep], min_count


def chunk_plan(sentence_starts, chunk_words):
    """Group sentences into chunks of about ``chunk_words`` tokens: int64 [C+1]."""
    n_tokens = int(sentence_starts[-1])
    targets = np.arange(0, n_tokens, chunk_words, dtype=np.int64)
    starts = np.unique(np.searchsorted(sentence_starts, targets, side="left"))
    n_sentences = sentence_starts.shape[0] - 1
    starts = starts[starts < n_sentences]
    return np.append(starts, n_sentences).astype(np.int64)


def init_input_vectors(path, vocab_size, dim, seed):
    """The C tool's initialisation, uniform in [-0.5, 0.5) / dim, written in row blocks."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(vocab_size, dim))
    rng = np.random.default_rng(seed)
    rows = max(1, (1 << 22) // dim)
    for start in range(0, vocab_size, rows):
        stop = min(vocab_size, start + rows)
        block = rng.random((stop - start, dim), dtype=np.float32)
        out[start:stop] = (block - np.float32(0.5)) / np.float32(dim)
    return out


def zero_matrix(path, n_rows, dim):
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, dim))
    out[:] = 0.0  # a new file reads as zeros already; this makes it explicit for reused paths
    return out


def prepare_model_dir(modeldir):
    """Create MODELDIR, refusing to clobber a directory that is not a bigw2v model."""
    if os.path.isfile(modeldir):
        raise OutputError(f"{modeldir} is a file, not a directory")
    if os.path.isdir(modeldir):
        extra = [n for n in os.listdir(modeldir) if n not in MODEL_FILES and not n.startswith(".")]
        if extra:
            raise OutputError(
                f"{modeldir} holds files that are not a bigw2v model ({', '.join(sorted(extra)[:3])}"
                "...): choose an empty or new directory")
        # Unmark the old model first: from here on, a crash leaves no valid-looking model.
        for name in MODEL_FILES:
            try:
                os.remove(os.path.join(modeldir, name))
            except FileNotFoundError:
                pass
    try:
        os.makedirs(modeldir, exist_ok=True)
        probe = os.path.join(modeldir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"cannot write to {modeldir}: {e.strerror}") from None


def train(workdir, modeldir, settings=None, progress=True, **overrides):
    """Train on a counted WORKDIR into MODELDIR; returns the run's summary dict.

    ``settings`` is a TrainSettings; keyword overrides (e.g. ``model="cbow"``)
    apply on top of it.
    """
    settings = TrainSettings(**{**(settings or TrainSettings()).to_dict(), **overrides})
    s = settings.resolved()
    manifest = read_manifest(workdir)
    all_words, all_counts = read_vocab(workdir)
    counted_min_count = int(manifest["settings"]["min_count"])
    words, counts, min_count = select_vocab(all_words, all_counts, counted_min_count, s)
    vocab_size = len(words)
    n_tokens = int(counts.sum())

    prepare_model_dir(modeldir)
    started = time.time()
    corpus, reused = encode(workdir, manifest, words, n_tokens, threads=s.threads,
                            progress=progress)
    encode_seconds = time.time() - started

    keep_threshold = tables.keep_thresholds(counts, s.sample)
    noise_accept, noise_alias = tables.noise_alias_table(counts)
    if s.hs:
        path_starts, path_nodes, path_codes = tables.huffman_paths(counts)
    else:
        path_starts, path_nodes, path_codes = tables.empty_paths()

    input_vectors = init_input_vectors(os.path.join(modeldir, "vectors.npy"),
                                       vocab_size, s.dim, s.seed)
    if s.negative > 0:
        output_vectors = zero_matrix(os.path.join(modeldir, "output_vectors.npy"),
                                     vocab_size, s.dim)
    else:
        output_vectors = np.zeros((1, s.dim), dtype=np.float32)
    if s.hs:
        node_vectors = zero_matrix(os.path.join(modeldir, "hs_vectors.npy"),
                                   vocab_size - 1, s.dim)
    else:
        node_vectors = np.zeros((1, s.dim), dtype=np.float32)

    tokens = np.asarray(corpus.tokens)
    sentence_starts = corpus.sentence_starts
    chunk_starts = chunk_plan(sentence_starts, s.chunk_words)
    n_chunks = chunk_starts.shape[0] - 1
    chunk_tokens = np.diff(sentence_starts[chunk_starts])
    batch = max(1, 4 * s.threads)

    numba.set_num_threads(min(s.threads, numba.config.NUMBA_NUM_THREADS))
    bar = progress_bar(n_tokens * s.epochs, f"train {s.model}", enabled=progress)
    epoch_losses = []
    trained_words = 0
    train_started = time.time()
    args = (s.model == "sg", tokens, sentence_starts, chunk_starts,
            keep_threshold, noise_accept, noise_alias, tables.sigmoid_table(),
            path_starts, path_nodes, path_codes,
            np.asarray(input_vectors), np.asarray(output_vectors), np.asarray(node_vectors),
            s.window, s.negative, s.hs, s.cbow_mean,
            np.float32(s.alpha), np.float32(s.min_alpha))
    try:
        for epoch in range(s.epochs):
            loss_sum, loss_terms = 0.0, 0
            for first in range(0, n_chunks, batch):
                ids = np.arange(first, min(n_chunks, first + batch), dtype=np.int64)
                loss = np.zeros(ids.shape[0], dtype=np.float64)
                terms = np.zeros(ids.shape[0], dtype=np.int64)
                trained = np.zeros(ids.shape[0], dtype=np.int64)
                kernels.train_chunks(ids, *args, epoch, s.epochs, s.seed, loss, terms, trained)
                loss_sum += float(loss.sum())
                loss_terms += int(terms.sum())
                trained_words += int(trained.sum())
                done = epoch * n_tokens + int(sentence_starts[chunk_starts[ids[-1] + 1]])
                alpha = s.alpha - (s.alpha - s.min_alpha) * done / (n_tokens * s.epochs)
                bar.set_postfix_str(f"epoch {epoch + 1}/{s.epochs} lr {alpha:.5f} "
                                    f"loss {loss_sum / max(loss_terms, 1):.4f}", refresh=False)
                bar.update(int(chunk_tokens[ids].sum()))
            epoch_losses.append(loss_sum / max(loss_terms, 1))
    finally:
        bar.close()
    train_seconds = time.time() - train_started

    for m in (input_vectors, output_vectors, node_vectors):
        if isinstance(m, np.memmap):
            m.flush()
    write_vocab(os.path.join(modeldir, "vocab.parquet"), words, counts)
    figures = {
        "vocab_size": vocab_size,
        "corpus_tokens": n_tokens,
        "sentences": int(sentence_starts.shape[0] - 1),
        "chunks": int(n_chunks),
        "trained_words": trained_words,
        "epoch_losses": [round(x, 6) for x in epoch_losses],
        "final_loss": round(epoch_losses[-1], 6),
        "encode_seconds": round(encode_seconds, 3),
        "encoding_reused": reused,
        "train_seconds": round(train_seconds, 3),
        "words_per_second": round(n_tokens * s.epochs / max(train_seconds, 1e-9)),
    }
    info = {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "complete": True,
        "vocab_size": vocab_size, "dim": s.dim,
        "settings": {**s.to_dict(), "min_count": min_count},
        "figures": figures,
        "workdir": os.path.abspath(workdir),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.join(modeldir, "model.json"), info)
    return info
