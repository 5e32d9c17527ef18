"""bigw2v: word2vec for very large text on one machine, with Numba kernels.

    import bigw2v
    bigw2v.count(["corpus.txt.xz"], "work")          # pass 1: vocabulary
    bigw2v.train("work", "model", model="sg")          # pass 2: vectors
    vectors = bigw2v.load("model")
    vectors.most_similar("king")
"""

__version__ = "0.3.0"


def count(corpus, workdir, min_count=5, threads=None, progress=True, **options):
    """Count the vocabulary of ``corpus`` (paths, directories, '-') into ``workdir``."""
    from .counter import count as _count
    return _count(corpus, workdir, min_count=min_count, threads=threads, progress=progress,
                  **options)


def train(workdir, modeldir, settings=None, progress=True, **overrides):
    """Train vectors on a counted workdir; see ``bigw2v.settings.TrainSettings`` for options.

    Also ``resume=True``, ``force=True``, ``init_from=MODELDIR_OR_FILE`` and
    ``checkpoint_every=SECONDS`` (see ``bigw2v.trainer.train`` and docs/cron.md).
    """
    from .trainer import train as _train
    return _train(workdir, modeldir, settings, progress=progress, **overrides)


def phrases(workdir, passes=2, threshold=None, min_count=5, **options):
    """Join frequent word pairs of a counted workdir into phrases (word2phrase's scores,
    exact counts); ``train`` then trains on the joined corpus. See ``bigw2v.phraser``."""
    from .phraser import phrases as _phrases
    return _phrases(workdir, passes=passes, threshold=threshold, min_count=min_count,
                    **options)


def publish(modeldir, link):
    """Point the symbolic link ``link`` at the finished model ``modeldir``, atomically."""
    from .publisher import publish as _publish
    return _publish(modeldir, link)


def load(path, mmap=True, limit=None):
    """Load a ``Vectors`` object: a trained model directory (memory-mapped), a word2vec
    file (.bin, .txt, .vec, compressed too; recognised from its content) or a Parquet
    export; ``limit=N`` keeps the first N words."""
    from .vectors import load as _load
    return _load(path, mmap=mmap, limit=limit)


def load_word2vec_format(path, binary=None, limit=None):
    """Load a word2vec binary or text file (the C tool's, gensim's, fastText's .vec)."""
    from .vectors import load_word2vec_format as _load
    return _load(path, binary=binary, limit=limit)


def evaluate_analogies(vectors, path, restrict_vocab=30000):
    from .evaluate import evaluate_analogies as _evaluate
    return _evaluate(vectors, path, restrict_vocab=restrict_vocab)


def evaluate_pairs(vectors, path):
    from .evaluate import evaluate_pairs as _evaluate
    return _evaluate(vectors, path)
