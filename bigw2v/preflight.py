"""Preflight: will a run fit in memory and on disk? Checked before anything is written.

A billion-word run that dies of a full disk after an hour, or crawls because
its weights do not fit in RAM, wastes the hour; the figures that decide it
are known before the first byte is written. The rules (docs/design.md,
"Scale: memory, disk, odd input"):

train
    memory = the weight matrices (V x dim x 4 bytes each: input, output with
    negative sampling, V-1 inner nodes with --hs) + the sampling tables + the
    vocabulary as Python objects + ``MEMORY_MARGIN``; while encoding (if the
    encoding is not cached) the word -> row table instead (one, shared by the
    encoding threads).
    The weights are memory-mapped files, so this is page cache, not private
    memory, and the kernel would page them in and out rather than fail; but
    the kernels touch rows at random, so weights that do not fit in RAM make
    training hundreds of times slower. So: refuse when the need exceeds what
    psutil calls available (free memory plus reclaimable page cache), warn
    above ``WARN_FRACTION`` of it.

    disk, per filesystem: in MODELDIR the weight files, plus two checkpoint
    copies when checkpoints are on (a new one is complete before the old one
    goes); in WORKDIR, unless cached, the token file (4 bytes a token) and
    the sentence offsets (8 bytes a sentence, twice while they are copied
    under their header). Files of an old model or run that the new run
    replaces count as free. Refuse when short.

    When it does not fit, the message gives the figures and a vocabulary
    size that would: ``--max-vocab N`` (the N most frequent words) and the
    ``--min-count`` with the same effect.

count
    disk: the runs and shards of the text to count take at most about the
    size of the text (a natural-language corpus needs about a quarter of
    it, a text of nothing but distinct short words up to ~3x); compressed
    inputs are taken at ``COMPRESSED_EXPANSION`` times their size. Refuse
    when short.

Every check can be skipped: ``--no-preflight`` (``preflight=False``).
"""

import logging
import os
import shutil
from dataclasses import dataclass

import numpy as np
import psutil

from .corpus import MAX_SENTENCE_WORDS
from .errors import ResourceError
from .workdir import ENCODED_DIR, SHARDS_DIR

log = logging.getLogger("bigw2v")

GiB = 2**30
# Interpreter, Numba, pyarrow, the chunk plan and loss arrays, a few blocks of text.
MEMORY_MARGIN = 512 * 2**20
DISK_MARGIN = 64 * 2**20
WARN_FRACTION = 0.8
# Measured: a word as a str in the vocabulary list (~65 B); the encoder's one
# WordTable, shared by its threads, keeps ~35 B a word (11-byte words) and peaks at
# ~120 B a word of RSS while it is built from an Arrow copy of the words.
WORD_LIST_BYTES = 80
WORD_TABLE_BYTES = 120
# Subsampling thresholds, the alias table and what building it takes.
TABLE_BYTES_PER_WORD = 48
# Huffman paths: about log2(V) nodes and codes per word, plus the build.
HS_BYTES_PER_WORD = 160
COMPRESSED_EXPANSION = 4
COUNT_BYTES_PER_TEXT_BYTE = 1.0


def available_memory():
    """Bytes of memory a new allocation can get without swapping: free + reclaimable cache."""
    return int(psutil.virtual_memory().available)


def free_disk(path):
    """Free bytes on the filesystem of ``path`` (or of its nearest existing parent)."""
    return int(shutil.disk_usage(_existing(path)).free)


def _existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _device(path):
    return os.stat(_existing(path)).st_dev


def tree_bytes(path):
    """Bytes of a file, or of every file below a directory (0 if absent).

    Links count as themselves and are not followed: removing one frees only it.
    """
    if os.path.islink(path) or not os.path.isdir(path):
        try:
            return os.lstat(path).st_size
        except OSError:  # absent, or removed meanwhile
            return 0
    total = 0
    for top, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def human(n):
    """Bytes as a short figure: 1.5 GB, 340 MB, 12 kB (powers of 1024)."""
    for unit, scale in (("TB", 2**40), ("GB", GiB), ("MB", 2**20), ("kB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


# ---------------------------------------------------------------- train


@dataclass
class TrainNeeds:
    """What a training run needs, in bytes."""

    weights: int
    memory: int           # peak: training or (uncached) encoding, with the margin
    model_disk: int       # in MODELDIR: weights and checkpoint copies
    encoding_disk: int    # in WORKDIR/encoded: token file and sentence offsets (0 if cached)


def train_needs(vocab_size, all_words, dim, negative, hs, n_tokens, sentences,
                encoding_cached, checkpoints):
    """The needs of training ``vocab_size`` words (rules in the module docstring).

    ``all_words``: words in the counted vocabulary (all are read, whatever
    --max-vocab); ``sentences``: an upper bound of the sentences to encode.
    """
    matrices = 1 + (negative > 0)
    weights = 4 * dim * (vocab_size * matrices + (vocab_size - 1 if hs else 0))
    words = all_words * WORD_LIST_BYTES
    training = (words + weights + vocab_size * TABLE_BYTES_PER_WORD
                + (vocab_size * HS_BYTES_PER_WORD if hs else 0))
    encoding = 0
    if not encoding_cached:
        encoding = words + vocab_size * WORD_TABLE_BYTES
    copies = 2 if checkpoints else 0
    model_disk = weights * (1 + copies) + vocab_size * 32 + DISK_MARGIN  # + vocab.parquet
    encoding_disk = 0 if encoding_cached else 4 * n_tokens + 2 * 8 * (sentences + 1) + DISK_MARGIN
    return TrainNeeds(weights, max(training, encoding) + MEMORY_MARGIN, model_disk, encoding_disk)


def sentences_bound(manifest, n_tokens):
    """At most how many sentences encoding the counted corpus gives.

    Every counted sentence, one more per cut of a long one, one per input end.
    """
    return (int(manifest["totals"]["sentences"]) + n_tokens // MAX_SENTENCE_WORDS
            + len(manifest["inputs"]))


def check_train(workdir, modeldir, settings, counts, vocab_size, sentences, encoding_cached,
                checkpoints, reclaimable_model_bytes=0):
    """Refuse (ResourceError) a run that cannot fit; warn when memory is tight.

    ``counts``: the counted vocabulary's counts, most frequent first;
    ``vocab_size``: how many of them the run trains. ``reclaimable_model_bytes``:
    files in MODELDIR the run replaces (an old model, a run being resumed).
    """
    s = settings
    n_tokens = int(np.sum(counts[:vocab_size]))

    def needs(v, cached):
        tokens = n_tokens if v == vocab_size else int(np.sum(counts[:v]))
        return train_needs(v, len(counts), s.dim, s.negative, s.hs, tokens,
                           sentences, cached, checkpoints)

    def shortfalls(v, cached):
        """Human lines for every resource ``needs(v)`` exceeds (empty: it fits)."""
        need = needs(v, cached)
        lines = []
        memory = available_memory()
        if need.memory > memory:
            lines.append(f"memory: {human(need.memory)} needed (weights {human(need.weights)}, "
                         f"{v:,} words x dim {s.dim}), {human(memory)} available")
        per_device = {}
        for path, amount, what in ((modeldir, need.model_disk - reclaimable_model_bytes,
                                    "weights and checkpoint copies in MODELDIR"),
                                   (os.path.join(workdir, ENCODED_DIR), need.encoding_disk,
                                    "token file in WORKDIR")):
            if amount > 0:
                entry = per_device.setdefault(_device(path), [path, 0, []])
                entry[1] += amount
                entry[2].append(f"{what} {human(amount)}")
        for path, amount, parts in per_device.values():
            free = free_disk(path)
            if amount > free:
                lines.append(f"disk at {_existing(path)}: {human(amount)} needed "
                             f"({', '.join(parts)}), {human(free)} free")
        return lines, need

    problems, need = shortfalls(vocab_size, encoding_cached)
    if not problems:
        memory = available_memory()
        if need.memory > WARN_FRACTION * memory:
            log.warning("memory is tight: training needs %s of the %s available; other "
                        "programs that grow may push the weights out of RAM and slow the run "
                        "down", human(need.memory), human(memory))
        return need
    # The largest vocabulary that fits: needs grow with the vocabulary.
    lo, hi = 0, vocab_size - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if shortfalls(mid, False)[0]:
            hi = mid - 1
        else:
            lo = mid
    if lo >= 1:
        min_count = int(counts[lo]) + 1  # every word this frequent is among the lo first
        advice = (f"Train fewer words: --max-vocab {lo} (the most frequent) or --min-count "
                  f"{min_count} would fit")
    else:
        advice = "Even a one-word vocabulary would not fit"
    others = ["a lower --dim", "more free memory or disk"]
    if checkpoints and any(p.startswith("disk") for p in problems):
        others.append("--checkpoint-every 0 (no checkpoint copies)")
    raise ResourceError(
        f"not enough room to train {vocab_size:,} words x dim {s.dim}: "
        f"{'; '.join(problems)}. {advice}; so might {', '.join(others)}. "
        "--no-preflight skips this check")


def reclaimable_in_model_dir(modeldir, names):
    """Bytes of the files and checkpoint directories ``names`` in MODELDIR (what a run replaces)."""
    if not os.path.isdir(modeldir):
        return 0
    return sum(tree_bytes(os.path.join(modeldir, n)) for n in os.listdir(modeldir) if names(n))


# ---------------------------------------------------------------- count


def count_disk_need(inputs):
    """Bytes the runs and shards of ``inputs`` may take (rule in the module docstring)."""
    text = sum(inp.size * (COMPRESSED_EXPANSION if inp.compression else 1) for inp in inputs)
    return int(text * COUNT_BYTES_PER_TEXT_BYTE) + DISK_MARGIN


def check_count(workdir, to_count, runs_root, keep_runs):
    """Refuse (ResourceError) a count whose runs and shards cannot fit in WORKDIR's filesystem.

    ``to_count``: the inputs to read; ``keep_runs``: run directories reused
    (their words are merged into the shards again). Old shards, dropped runs
    and (when inputs changed) old encodings are removed first and count as free.
    """
    if not to_count:
        return
    kept = 0
    removed = tree_bytes(os.path.join(workdir, SHARDS_DIR))
    if os.path.isdir(runs_root):
        for key in os.listdir(runs_root):
            size = tree_bytes(os.path.join(runs_root, key))
            if key in keep_runs:
                kept += size
            else:
                removed += size
    removed += tree_bytes(os.path.join(workdir, ENCODED_DIR))
    need = count_disk_need(to_count) + kept
    free = free_disk(workdir) + removed
    if need > free:
        text = sum(inp.size for inp in to_count)
        raise ResourceError(
            f"not enough disk space to count in {workdir}: the counts of {human(text)} of "
            f"input may take up to {human(need)} (about the size of the text, compressed "
            f"inputs x{COMPRESSED_EXPANSION}), {human(free)} is free. Free some space, use a "
            "workdir on a larger disk, or count the inputs in parts; --no-preflight skips "
            "this check")
