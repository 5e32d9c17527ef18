"""Training settings: names, defaults (the C tool's) and validation."""

import os
from dataclasses import asdict, dataclass, fields

from .errors import UsageError


def available_cores():
    """The CPUs this process may run on (its affinity mask, else every CPU)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plural(n, word):
    """``n word`` with the word's plural when n is not 1 (``1 epoch``, ``2 epochs``)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def threads_to_use(threads, what):
    """``threads``, or the cores there are when it asks for more (said in a warning).

    More threads than cores only slow the kernels down (and cost a word table
    each when counting); the summary and model.json then report what ran.
    """
    cores = available_cores()
    if threads <= cores:
        return threads
    import logging
    logging.getLogger("bigw2v").warning(
        "--threads %d is more than the %d cores this process may use: %s on %d", threads,
        cores, what, cores)
    return cores


@dataclass
class TrainSettings:
    model: str = "sg"            # "sg" (skip-gram) or "cbow"
    dim: int = 100
    window: int = 5              # maximum reach; each centre word draws 1..window
    negative: int = 5            # noise words per window; 0 turns negative sampling off
    hs: bool = False             # hierarchical softmax (alone, or with negative > 0)
    sample: float = 1e-3         # subsampling threshold; 0 keeps every word
    epochs: int = 5
    alpha: float | None = None   # start learning rate: 0.025 for sg, 0.05 for cbow
    min_alpha: float | None = None  # end learning rate: alpha * 1e-4, as the C tool
    min_count: int | None = None    # default: the min-count the workdir was counted with
    max_vocab: int | None = None    # keep only the N most frequent words
    threads: int | None = None      # default: all cores
    seed: int = 1
    cbow_mean: bool = True       # CBOW hidden layer: mean (True) or sum of the context
    chunk_words: int = 65536     # words per unit of parallel work

    def resolved(self):
        """A copy with every default filled in, validated (UsageError on bad values)."""
        s = TrainSettings(**asdict(self))
        if s.model not in ("sg", "cbow"):
            raise UsageError(f"--model must be sg or cbow, not {s.model!r}")
        if s.alpha is None:
            s.alpha = 0.025 if s.model == "sg" else 0.05
        if s.min_alpha is None:
            s.min_alpha = s.alpha * 1e-4
        if s.threads is None:
            s.threads = os.cpu_count() or 1
        checks = [
            (s.dim >= 1, "--dim must be at least 1"),
            (s.window >= 1, "--window must be at least 1"),
            (s.negative >= 0, "--negative must be 0 or more"),
            (s.negative > 0 or s.hs, "use --negative N > 0, --hs, or both"),
            (0 <= s.sample < 1, "--sample must be in [0, 1)"),
            (s.epochs >= 1, "--epochs must be at least 1"),
            (s.alpha > 0, "--alpha must be positive"),
            (0 <= s.min_alpha <= s.alpha, "--min-alpha must be in [0, alpha]"),
            (s.min_count is None or s.min_count >= 1, "--min-count must be at least 1"),
            (s.max_vocab is None or s.max_vocab >= 1, "--max-vocab must be at least 1"),
            (s.threads >= 1, "--threads must be at least 1"),
            (0 <= s.seed < 2**63, "--seed must be a non-negative integer"),
            (s.chunk_words >= 1, "chunk_words must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return s

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UsageError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**d)


# Training on a Ray cluster (ray_train.py): how often the nodes average their weights.
# pWord2Vec averages the top 1,024 rows about every 0.1 s; a core trains about
# 0.7 million words a second. On wiki1e8 (2 nodes of 1 core, 5 epochs) syncing
# every 100,000 words matched a local run's SimLex; every 200,000 fell 0.015 short.
RAY_HOT_ROWS = 1024          # rows combined after every round
RAY_SYNC_WORDS = 100_000     # words a node trains between two syncs, per core of the node
RAY_FULL_SYNC_EVERY = 64     # rounds between two syncs of every row
RAY_SYNC_LAG = 1             # rounds late a node gets the others' changes (ray_train.py)
