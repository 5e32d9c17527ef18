"""Pass 2: train vectors on a counted workdir (epochs, schedule, threads, output).

The trainer does everything around the kernel: picks the vocabulary, encodes
the corpus (cached), builds the sampling tables, lays out the weights as
``.npy`` files in the model directory mapped copy-on-write (the trained rows
stay in memory until written out), splits each epoch into
chunks and hands batches of chunks to the parallel kernel, reporting progress
between batches. A chunk's result depends only on (weights, chunk, epoch,
seed), which is what lets an outside engine schedule chunks itself, and what
makes resuming simple: the whole training state between two batches is the
weights plus ``Progress`` (epoch, next chunk, loss sums). The learning rate
is a function of the token position and every chunk's random stream is
derived from (seed, epoch, chunk), so no RNG state needs saving.

A run in MODELDIR (see docs/formats.md):

1. ``run.json`` is written when a run starts: it marks MODELDIR as holding an
   unfinished run and records what the run was started with.
2. Checkpoints (``checkpoint.py``) are written every ``checkpoint_every``
   seconds and at epoch ends.
3. At the end the weights are written (fsynced, renamed into place), ``vocab.parquet`` and last
   ``model.json`` are written: model.json alone marks the model finished.
   Then run.json and the checkpoints are removed.
"""

import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

import numba
import numpy as np
import psutil

from . import checkpoint, kernels, lock, preflight, tables
from .atomic import write_json
from .encode import ENCODED_META, encode, encoding_key
from .errors import InputDataError, Interrupted, MissingInputError, UsageError, write_failed
from .modeldir import (MODEL_NAME, RUN_FORMAT, RUN_NAME, RUN_VERSION, MODEL_FORMAT,
                       MODEL_VERSION, HS_VECTORS_NAME, OUTPUT_VECTORS_NAME, VECTORS_NAME,
                       check_model_dir, clear_model_dir, describe_run, finished_model,
                       read_run, replaced_by_a_run, weight_files)
from .progress import progress_bar
from .settings import TrainSettings, plural, threads_to_use
from .workdir import VOCAB_NAME, encoding_dir, npy_header, read_manifest, read_vocab, write_vocab
from .warmstart import check_source as check_init_source, warm_start

log = logging.getLogger("bigw2v")

# Default seconds between checkpoints: at most ten minutes of work lost to a kill.
CHECKPOINT_EVERY = 600.0
# An epoch end is checkpointed unless one was written less than this long ago:
# an epoch that short is cheaper to redo than to copy the weights for.
EPOCH_CHECKPOINT_GAP = 5.0
# Settings that may differ when a run is resumed: they do not change the result.
RESUME_MAY_CHANGE = ("threads",)


@dataclass
class Progress:
    """Where a run is: the next (epoch, chunk) to train and the sums so far."""

    epoch: int = 0
    next_chunk: int = 0
    epoch_losses: list = field(default_factory=list)
    loss_sum: float = 0.0        # the current epoch's, float64
    loss_terms: int = 0
    trained_words: int = 0
    train_seconds: float = 0.0   # summed over all sessions of the run
    checkpoints: int = 0
    sessions: int = 1
    # On Ray (ray_train.py): each node's next chunk in its own slice, and next_chunk
    # is the next round of the epoch.
    positions: list | None = None

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


@dataclass
class RunOptions:
    """How this call runs, beside the training settings (``train``'s keyword arguments)."""

    progress: bool = True
    resume: bool = False
    force: bool = False
    init_from: str | None = None
    checkpoint_every: float | None = CHECKPOINT_EVERY   # None: no checkpoints
    preflight: bool = True
    ray: object = None                  # a Ray address, True (a local cluster) or None (here)
    ray_sync: object = None             # ray_train.SyncSettings


@dataclass
class Session:
    """One call's run in MODELDIR: its settings, its run.json, whether it resumes."""

    modeldir: str
    settings: TrainSettings
    run: dict | None
    resuming: bool
    options: RunOptions
    training: bool = False   # the batch loop is about to start, or has (see Checkpointer)


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


def seconds_since_process_start():
    """How long this process has run (10 ms resolution).

    On Linux from /proc: psutil's create_time adds the boot time, which the
    kernel gives in whole seconds, so it can be up to a second off.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, ticks since boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return max(0.0, time.time() - psutil.Process().create_time())


def init_input_vectors(path, vocab_size, dim, seed):
    """The C tool's initialisation, uniform in [-0.5, 0.5) / dim, written in row blocks.

    Written with plain writes, then mapped: filling a fresh mapping page-faults
    every page first (about twice as slow).
    """
    rng = np.random.default_rng(seed)
    rows = max(1, (1 << 22) // dim)
    with open(path, "wb") as f:
        f.write(npy_header(np.float32, (vocab_size, dim)))
        for start in range(0, vocab_size, rows):
            block = rng.random((min(vocab_size, start + rows) - start, dim), dtype=np.float32)
            block -= np.float32(0.5)
            block /= np.float32(dim)
            f.write(block.data)
    return open_weights_file(path)


def zero_matrix(path, n_rows, dim):
    """A new all-zero weight file (a sparse file: it reads as zeros), mapped."""
    with open(path, "wb") as f:
        f.write(npy_header(np.float32, (n_rows, dim)))
        f.truncate(f.tell() + 4 * n_rows * dim)
    return open_weights_file(path)


def open_weights_file(path):
    """A weight file mapped copy-on-write: the working weights of a run.

    Trained rows become the process's own pages and are never written back
    to the file while training; checkpoints and the finished model are
    written from memory (``checkpoint.write_matrix``). A shared, writable
    map made the kernel write every dirtied page back to disk over and over:
    at 1.4M words x dim 300 (3.2 GB of weights) the page flusher wrote about
    500 MB/s for the whole run, and training ran 4.7x slower (116k words/s
    against 546k; docs/design.md, "Memory of `train`").
    """
    return np.load(path, mmap_mode="c")


# ---------------------------------------------------------------- settings on resume


def settings_conflicts(saved, wanted):
    """Human lines for each setting where ``wanted`` contradicts the run's ``saved`` one."""
    lines = []
    for name, old in saved.items():
        if name in RESUME_MAY_CHANGE:
            continue
        new = wanted.get(name)
        if new != old:
            lines.append(f"{name.replace('_', '-')} {new} (the run has {old})")
    return lines


def _requested_settings(settings, overrides, base=None):
    """Settings of this call: ``base`` (a resumed run's), then ``settings``, then overrides."""
    merged = dict(base) if base is not None else TrainSettings().to_dict()
    if settings is not None:
        merged.update(settings.to_dict())
    merged.update(overrides)
    return TrainSettings.from_dict(merged)


# ---------------------------------------------------------------- stopping on a signal


class StopFlag:
    """Set by SIGINT/SIGTERM while training; the batch loop checkpoints and stops.

    The kernel runs compiled code between batches, so the signal only takes
    effect at the next batch boundary, which is the one point where the
    state is consistent anyway.
    """

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- the kernels' inputs


class TrainingJob(NamedTuple):
    """Everything the kernels read and write in a run, built once (``prepare_job``).

    An engine can hold one of these per worker and call ``train_range`` on
    any range of chunks: a chunk's result depends only on the weights, the
    chunk, the epoch and the seed.
    """

    corpus: kernels.CorpusArrays
    tables: kernels.SamplingTables
    weights: kernels.Weights
    params: kernels.KernelParams

    @property
    def n_chunks(self):
        return self.corpus.chunk_starts.shape[0] - 1


def prepare_job(tokens, sentence_starts, chunk_starts, counts, s, weights):
    """The kernels' inputs for settings ``s`` (resolved) and weight matrices ``weights``.

    ``weights`` maps weight file names (``modeldir.weight_files``) to float32
    matrices, trained in place. The sampling tables are functions of the
    counts and settings only, so every worker and every resumed session
    builds the same ones.
    """
    if s.hs:
        path_starts, path_nodes, path_codes = tables.huffman_paths(counts)
    else:
        path_starts, path_nodes, path_codes = tables.empty_paths()
    noise_accept, noise_alias = tables.noise_alias_table(counts)
    sampling = kernels.SamplingTables(
        tables.keep_thresholds(counts, s.sample), noise_accept, noise_alias,
        tables.sigmoid_table(), path_starts, path_nodes, path_codes,
        tables.longest_path(path_starts))
    unused = np.zeros((1, s.dim), dtype=np.float32)
    matrices = kernels.Weights(*(np.asarray(weights.get(name, unused)) for name in
                                 (VECTORS_NAME, OUTPUT_VECTORS_NAME, HS_VECTORS_NAME)))
    params = kernels.KernelParams(s.model == "sg", s.window, s.negative, s.hs, s.cbow_mean,
                                  np.float32(s.alpha), np.float32(s.min_alpha), s.epochs,
                                  s.seed)
    corpus = kernels.CorpusArrays(np.asarray(tokens), sentence_starts, chunk_starts)
    return TrainingJob(corpus, sampling, matrices, params)


class RangeTotals(NamedTuple):
    """Sums over a range of chunks: loss, loss terms, words trained (after subsampling)."""

    loss: float
    terms: int
    trained: int


def train_range(job, epoch, first_chunk, stop_chunk):
    """Train chunks ``first_chunk..stop_chunk-1`` of ``epoch`` in parallel, in place.

    Uses ``numba.get_num_threads()`` threads. The position (epoch, chunk) is
    all the state a resumed or distributed run needs besides the weights.
    """
    ids = np.arange(first_chunk, stop_chunk, dtype=np.int64)
    loss = np.zeros(ids.shape[0], dtype=np.float64)
    terms = np.zeros(ids.shape[0], dtype=np.int64)
    trained = np.zeros(ids.shape[0], dtype=np.int64)
    kernels.train_chunks(ids, epoch, job.corpus, job.tables, job.weights, job.params,
                         loss, terms, trained)
    return RangeTotals(float(loss.sum()), int(terms.sum()), int(trained.sum()))


# ---------------------------------------------------------------- training


def train(workdir, modeldir, settings=None, progress=True, resume=False, force=False,
          init_from=None, checkpoint_every=CHECKPOINT_EVERY, preflight=True, ray=None,
          ray_sync=None, **overrides):
    """Train on a counted WORKDIR into MODELDIR; returns the run's summary dict.

    ``settings`` is a TrainSettings; keyword overrides (e.g. ``model="cbow"``)
    apply on top of it. ``resume`` continues an unfinished run in MODELDIR
    (settings not given are the run's; given ones must agree with it);
    ``force`` starts over even when MODELDIR holds an unfinished run, and replaces a
    finished model (without it, a finished model in MODELDIR is refused: UsageError).
    ``init_from`` is a finished model to warm-start from. ``checkpoint_every``
    is in seconds; 0 or None turns checkpoints off. ``preflight`` False skips
    the memory and disk check made before anything is written (``preflight.py``).
    ``ray``: train on a Ray cluster (``ray_train.py``): its address as
    ``ray.init`` takes it, or True to start a local one; ``ray_sync`` a
    ``ray_train.SyncSettings`` (nodes, sync words, hot rows, full syncs).
    """
    if resume and force:
        raise UsageError("--resume and --force contradict each other: continue the run, or "
                         "start it over")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise UsageError("--checkpoint-every must be 0 (off) or a number of seconds")
    if ray is not None and ray is not False:
        from .ray_train import SyncSettings, import_ray
        import_ray()  # before any work: a missing extra is a one-line error
        ray_sync = (ray_sync or SyncSettings()).checked()
    else:
        ray, ray_sync = None, None
    options = RunOptions(progress, resume, force, init_from, checkpoint_every or None, preflight,
                         ray, ray_sync)
    created = not os.path.lexists(modeldir)
    check_model_dir(modeldir)
    with lock.hold(modeldir, "bigw2v train"):
        session = None
        try:
            session = _start_session(modeldir, settings, overrides, options)
            if session is None:
                return finished_model(modeldir)
            return _train_session(workdir, session)
        except BaseException:
            if session is not None:
                _abandon_start(session)
            if created:  # a rejected run leaves no empty MODELDIR behind
                lock.remove_empty_directory(modeldir)
            raise


def _abandon_start(session):
    """After a new run failed before training began: remove what it wrote, run.json first.

    Such a run must not look resumable: resuming it would only repeat the
    failure (a --dim the --init-from model contradicts, say), and there is no
    training to keep. A resumed run, or one that began training (a full disk at
    its first checkpoint, say), stays: --resume continues it with its settings.
    """
    if session.resuming or session.run is None or session.training:
        return
    try:
        for name in (RUN_NAME, *weight_files(session.settings)):
            try:
                os.remove(os.path.join(session.modeldir, name))
            except FileNotFoundError:
                pass
    except OSError as e:
        log.warning("could not remove the failed run's files in %s: %s", session.modeldir, e)


def _start_session(modeldir, settings, overrides, options):
    """What this call does in MODELDIR: a Session, or None when a finished model stands.

    Refuses an unfinished run without --resume or --force, and --resume with
    settings that contradict the run (or the finished model) it would continue.
    """
    run = read_run(modeldir)
    finished = finished_model(modeldir)
    unfinished = run is not None and finished is None
    if unfinished and not (options.resume or options.force):
        raise UsageError(f"{modeldir} holds an unfinished run "
                         f"({describe_run(modeldir, run)}): pass "
                         "--resume to continue it, or --force to start over")
    if finished is not None and not (options.resume or options.force):
        # A finished model is never replaced by accident: readers may be using it.
        where = (f"{modeldir} (a link to {os.path.realpath(modeldir)})"
                 if os.path.islink(modeldir.rstrip(os.sep) or modeldir) else modeldir)
        raise UsageError(f"{where} holds a finished model (created {finished.get('created')}): "
                         "choose a new directory, or pass --force to replace it (readers of "
                         "that model will see it disappear)")
    if options.init_from is not None:
        # A `latest` link may move on during the run.
        options.init_from = os.path.realpath(options.init_from)
    resuming = options.resume and unfinished
    if resuming and run.get("ray_nodes") and options.ray is None:
        raise UsageError(f"the run in {modeldir} was started on {run['ray_nodes']} Ray nodes, "
                         f"each training its own slice: resume it with --ray")
    if not (resuming or (options.resume and finished is not None)):
        if options.resume:
            log.info("nothing to resume in %s: starting a new run", modeldir)
        s = _requested_settings(settings, overrides).resolved()
        if options.init_from is not None:
            _check_init_from(options.init_from, s)
        return Session(modeldir, s, None, False, options)
    # Options not given are the run's (threads too, which may differ when given);
    # given ones must agree with the run.
    recorded = run if resuming else finished
    s = _requested_settings(settings, overrides, recorded["settings"]).resolved()
    conflicts = settings_conflicts(recorded["settings"], s.to_dict())
    recorded_init = recorded.get("init_from")
    if options.init_from is not None and options.init_from != recorded_init:
        conflicts.append(f"init-from {options.init_from} (the run has {recorded_init})")
    if conflicts:
        raise UsageError(f"--resume with settings that contradict the "
                         f"{'run' if resuming else 'finished model'} in {modeldir}: "
                         f"{'; '.join(conflicts)}. Leave them out to continue, "
                         "or pass --force to start over")
    if not resuming:
        log.info("%s already holds the finished model: nothing to resume", modeldir)
        return None
    options.init_from = recorded_init
    return Session(modeldir, s, run, True, options)


def _check_init_from(init_from, s):
    """Refuse a warm start from what is not a finished model or word2vec file of this --dim.

    Before anything is written: a mistyped path must not cost the model in MODELDIR.
    ``warm_start`` checks the old model in full when it reads it.
    """
    check_init_source(init_from, s.dim)  # a model directory or a word2vec file


def _train_session(workdir, session):
    if session.options.ray is None:  # a Ray node uses its own cores (ray_train.py)
        session.settings.threads = threads_to_use(session.settings.threads, "training")
    if not os.path.isdir(workdir):
        raise MissingInputError(f"{workdir} is not a counted workdir: run `bigw2v count` first")
    # The workdir lock covers reading the counts and writing the encoding: a
    # `bigw2v count` rewriting the workdir must not run under our feet.
    with lock.hold(workdir, "bigw2v train (encoding)"):
        words, counts, corpus, figures = _prepare_corpus(workdir, session)
    if session.options.ray is not None:
        from . import ray_train
        return ray_train.run(session, workdir, words, counts, figures)
    return _run(session, corpus, words, counts, figures)


def _prepare_corpus(workdir, session):
    """Pick the vocabulary, check room, write run.json (a new run), encode the corpus.

    Returns (words, counts, the EncodedCorpus, encoding figures).
    """
    s = session.settings
    manifest = read_manifest(workdir)
    # the joined corpus of `bigw2v phrases`, when it ran on this count
    from .phraser import encode_phrased, in_use, phrased_key, read_phrased_vocab, summary
    phrased = in_use(workdir, manifest)
    all_words, all_counts = (read_phrased_vocab(workdir) if phrased
                             else read_vocab(workdir))
    counted_min_count = int(manifest["settings"]["min_count"])
    words, counts, min_count = select_vocab(all_words, all_counts, counted_min_count, s)
    key = encoding_key(words, manifest)
    if phrased:
        key = phrased_key(key, phrased)
        if session.options.ray is not None:
            raise UsageError(f"train --ray does not train on phrases yet: remove "
                             f"{os.path.join(workdir, 'phrases')} or train without --ray")
    if session.resuming and key != session.run["encoding_key"]:
        raise InputDataError(
            f"the corpus or vocabulary of {workdir} changed since the run in "
            f"{session.modeldir} started (it was counted again, or is another workdir): "
            "resume with the workdir it started on, or pass --force to start over on the "
            "new counts")
    if session.options.preflight:
        _preflight(workdir, session, manifest, all_counts, len(words), key)
    if not session.resuming:
        clear_model_dir(session.modeldir)
        session.run = {"format": RUN_FORMAT, "version": RUN_VERSION,
                       "settings": {**s.to_dict(), "min_count": min_count},
                       "encoding_key": key, "workdir": os.path.abspath(workdir),
                       "normalize": manifest["settings"].get("normalize"),
                       "phrases": summary(phrased),
                       "init_from": session.options.init_from, "vocab_size": len(words),
                       "corpus_tokens": int(counts.sum()),
                       "started": _now()}
        write_json(os.path.join(session.modeldir, RUN_NAME), session.run)
    if session.options.ray is not None:  # every Ray node encodes for itself
        return words, counts, None, {"encode_seconds": 0.0, "encoding_reused": False}
    started = time.time()
    if phrased:
        corpus, reused = encode_phrased(workdir, manifest, phrased, words,
                                        int(counts.sum()), key)
    else:
        corpus, reused = encode(workdir, manifest, words, int(counts.sum()), threads=s.threads,
                                progress=session.options.progress, key=key)
    figures = {"encode_seconds": round(time.time() - started, 3), "encoding_reused": reused}
    return words, counts, corpus, figures


def _preflight(workdir, session, manifest, all_counts, vocab_size, key):
    """Check that the run fits in memory and on disk before anything is allocated."""
    sentences = preflight.sentences_bound(manifest, int(all_counts[:vocab_size].sum()))
    cached = os.path.exists(os.path.join(encoding_dir(workdir, key), ENCODED_META))
    replaced = preflight.reclaimable_in_model_dir(session.modeldir, replaced_by_a_run)
    preflight.check_train(workdir, session.modeldir, session.settings, all_counts, vocab_size,
                          sentences, cached, session.options.checkpoint_every is not None,
                          replaced)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- one session of a run


def _run(session, corpus, words, counts, figures_so_far):
    """Restore or initialise, build the kernels' inputs, train the epochs, finish."""
    s = session.settings
    chunk_starts = chunk_plan(corpus.sentence_starts, s.chunk_words)
    mats, p = _restore(session, words, int(chunk_starts.shape[0] - 1))
    job = prepare_job(corpus.tokens, corpus.sentence_starts, chunk_starts, counts, s, mats)
    numba.set_num_threads(min(s.threads, numba.config.NUMBA_NUM_THREADS))
    # Load the compiled kernel now (a range of no chunks), so that start-up
    # covers it and train_seconds is training alone.
    train_range(job, p.epoch, 0, 0)
    # The wait a `bigw2v train` user sees before the bar moves, encoding included.
    startup_seconds = seconds_since_process_start()
    saver = Checkpointer(session, job.n_chunks, p, mats)
    _run_epochs(session, job, corpus, p, saver)
    return _finish(session, mats, words, counts, p, {
        "vocab_size": len(words), "sentences": int(corpus.sentence_starts.shape[0] - 1),
        "chunks": int(job.n_chunks), **figures_so_far,
        "startup_seconds": round(startup_seconds, 3),
        "checkpoint_seconds": round(saver.seconds, 3)})


def _restore(session, words, n_chunks):
    """The weights and Progress to start from: the newest good checkpoint, or fresh ones.

    ``n_chunks``: the chunk plan's size (on Ray, a list: each node's), which
    the checkpoint's must equal.
    """
    modeldir, s = session.modeldir, session.settings
    found = None
    if session.resuming:
        checkpoint.remove_leftovers(modeldir)
        found = checkpoint.latest_good(modeldir)
        if found is None:
            log.info("%s: the run has no checkpoint yet: starting it again from the "
                     "beginning", modeldir)
    mats, warm = _open_weights(modeldir, s, words, session.run.get("init_from"), found)
    if warm is not None:
        session.run["warm_start"] = warm
        write_json(os.path.join(modeldir, RUN_NAME), session.run)
    if found is None:
        return mats, Progress()
    if found[1].get("n_chunks") != n_chunks:
        raise InputDataError(f"checkpoint {found[0]} was made with another chunk plan: "
                             "pass --force to start over")
    p = Progress.from_dict(found[1]["progress"])
    p.sessions += 1
    log.info("resuming %s from %s: epoch %d/%d, chunk %d", modeldir,
             os.path.basename(found[0]), p.epoch + 1, s.epochs, p.next_chunk)
    return mats, p


def _open_weights(modeldir, s, words, init_from, found):
    """The working weight matrices: restored from a checkpoint, or freshly initialised."""
    vocab_size = len(words)
    paths = {name: os.path.join(modeldir, name) for name in weight_files(s)}
    warm = None
    if found is not None:
        checkpoint.restore(*found, modeldir)
        mats = {name: open_weights_file(path) for name, path in paths.items()}
        for name, m in mats.items():
            expected = (vocab_size - 1 if name == HS_VECTORS_NAME else vocab_size, s.dim)
            if m.shape != expected or m.dtype != np.float32:
                raise InputDataError(f"checkpoint {found[0]}: {name} has shape {m.shape}, "
                                     f"{expected} expected: pass --force to start over")
        return mats, warm
    mats = {VECTORS_NAME: init_input_vectors(paths[VECTORS_NAME], vocab_size, s.dim, s.seed)}
    if s.negative > 0:
        mats[OUTPUT_VECTORS_NAME] = zero_matrix(paths[OUTPUT_VECTORS_NAME], vocab_size, s.dim)
    if s.hs:
        mats[HS_VECTORS_NAME] = zero_matrix(paths[HS_VECTORS_NAME], vocab_size - 1, s.dim)
    if init_from is not None:
        warm = warm_start(init_from, words, s.dim, mats[VECTORS_NAME],
                          mats.get(OUTPUT_VECTORS_NAME))
    return mats, warm


class Checkpointer:
    """Writes the run's checkpoints and knows when the next one is due."""

    def __init__(self, session, n_chunks, p, mats):
        # Made when the batch loop is about to start: from here on a failed run stays
        # resumable (``_abandon_start``).
        session.training = True
        self.session = session
        self.n_chunks = n_chunks
        self.progress = p
        self.every = session.options.checkpoint_every
        self.mats = mats
        self.session_started = time.time()
        self.seconds_before = p.train_seconds
        self.last = time.time()
        self.seconds = 0.0      # spent writing checkpoints in this session

    def train_seconds(self, now):
        """Training time of the whole run up to ``now`` (all sessions)."""
        return self.seconds_before + (now - self.session_started)

    def due(self, interval):
        return self.every is not None and time.time() - self.last >= interval

    def save(self):
        p, run = self.progress, self.session.run
        t0 = time.time()
        p.train_seconds = self.train_seconds(t0)
        existing = checkpoint.list_checkpoints(self.session.modeldir)
        p.checkpoints = max(p.checkpoints, existing[0][0] if existing else 0) + 1
        checkpoint.write(self.session.modeldir, p.checkpoints, self.mats,
                         {"progress": asdict(p), "encoding_key": run["encoding_key"],
                          "settings": run["settings"], "n_chunks": self.n_chunks,
                          "created": _now()})
        self.last = time.time()
        self.seconds += self.last - t0


def _run_epochs(session, job, corpus, p, saver):
    """Train from ``p``'s position to the last epoch, in batches of chunks.

    Between batches: progress, checkpoints when due, and the stop flag
    (SIGINT/SIGTERM checkpoint and raise ``Interrupted``).
    """
    s = session.settings
    sentence_starts, chunk_starts = job.corpus.sentence_starts, job.corpus.chunk_starts
    n_tokens, n_chunks = corpus.n_tokens, job.n_chunks
    chunk_tokens = np.diff(sentence_starts[chunk_starts])
    batch = max(1, 4 * s.threads)
    every = saver.every
    bar = progress_bar(n_tokens * s.epochs, f"train {s.model}", enabled=session.options.progress)
    bar.update(p.epoch * n_tokens + int(chunk_tokens[:p.next_chunk].sum()))
    with StopFlag() as stop:
        log.info("training %s on %d words x %s, %s per epoch, on %s, from epoch %d chunk %d; "
                 "checkpoints %s", s.model, n_tokens, plural(s.epochs, "epoch"),
                 plural(n_chunks, "chunk"), plural(s.threads, "thread"), p.epoch + 1,
                 p.next_chunk, f"every {every:g} s" if every else "off")
        try:
            while p.epoch < s.epochs:
                while p.next_chunk < n_chunks:
                    first = p.next_chunk
                    p.next_chunk = min(n_chunks, first + batch)
                    totals = train_range(job, p.epoch, first, p.next_chunk)
                    corpus.release(int(sentence_starts[chunk_starts[p.next_chunk]]))
                    p.loss_sum += totals.loss
                    p.loss_terms += totals.terms
                    p.trained_words += totals.trained
                    done = p.epoch * n_tokens + int(sentence_starts[chunk_starts[p.next_chunk]])
                    alpha = s.alpha - (s.alpha - s.min_alpha) * done / (n_tokens * s.epochs)
                    bar.set_postfix_str(f"epoch {p.epoch + 1}/{s.epochs} lr {alpha:.5f} "
                                        f"loss {p.loss_sum / max(p.loss_terms, 1):.4f}",
                                        refresh=False)
                    bar.update(int(chunk_tokens[first:p.next_chunk].sum()))
                    if stop.signal is not None:
                        break
                    if p.next_chunk < n_chunks and saver.due(every):
                        saver.save()
                if stop.signal is None or p.next_chunk == n_chunks:
                    p.epoch_losses.append(p.loss_sum / max(p.loss_terms, 1))
                    p.epoch += 1
                    p.next_chunk = 0
                    p.loss_sum, p.loss_terms = 0.0, 0
                if stop.signal is not None and p.epoch < s.epochs:
                    _stop(stop.signal, p, s, saver)
                if p.epoch < s.epochs and saver.due(min(EPOCH_CHECKPOINT_GAP, every or 0)):
                    saver.save()
        finally:
            bar.close()
    p.train_seconds = saver.train_seconds(time.time())


def _stop(signum, p, s, saver):
    """Checkpoint (when checkpoints are on) and raise Interrupted."""
    if saver.every is not None:
        saver.save()
    raise Interrupted(
        f"stopped by {signal.Signals(signum).name} at epoch {p.epoch + 1}/{s.epochs}, "
        f"chunk {p.next_chunk}"
        + (": pass --resume to continue" if saver.every is not None
           else " (checkpoints are off: the run must start over)"))


def _finish(session, mats, words, counts, p, figures):
    """Write the weights, vocab.parquet and model.json, then tidy up."""
    modeldir, s, run = session.modeldir, session.settings, session.run
    try:
        for name, m in mats.items():
            temp = os.path.join(modeldir, f".{name}.final.tmp")
            checkpoint.write_matrix(m, temp)
            os.replace(temp, os.path.join(modeldir, name))
    except OSError as e:
        raise write_failed(f"cannot write the weights in {modeldir}", e) from None
    write_vocab(os.path.join(modeldir, VOCAB_NAME), words, counts)
    n_tokens = int(counts.sum())
    info = {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "complete": True,
        "vocab_size": len(words), "dim": s.dim,
        "settings": {**run["settings"], "threads": s.threads},
        "figures": _figures(p, n_tokens, s, figures),
        "workdir": run["workdir"],
        "normalize": run.get("normalize"),
        "phrases": run.get("phrases"),
        "init_from": run.get("init_from"),
        "warm_start": run.get("warm_start"),
        **({"ray": run["ray"]} if run.get("ray") else {}),
        "created": _now(),
    }
    write_json(os.path.join(modeldir, MODEL_NAME), info)
    checkpoint.fsync_path(modeldir)
    # The model is finished and marked so; what follows is tidying up.
    try:
        os.remove(os.path.join(modeldir, RUN_NAME))
    except FileNotFoundError:
        pass
    checkpoint.remove_all(modeldir)
    return info


def _figures(p, n_tokens, s, figures):
    """model.json's figures: sizes, losses and times (docs/formats.md)."""
    return {
        "vocab_size": figures["vocab_size"],
        "corpus_tokens": n_tokens,
        "sentences": figures["sentences"],
        "chunks": figures["chunks"],
        "trained_words": p.trained_words,
        "epoch_losses": [round(x, 6) for x in p.epoch_losses],
        "final_loss": round(p.epoch_losses[-1], 6),
        "encode_seconds": figures["encode_seconds"],
        "encoding_reused": figures["encoding_reused"],
        "startup_seconds": figures["startup_seconds"],
        "train_seconds": round(p.train_seconds, 3),
        "words_per_second": round(n_tokens * s.epochs / max(p.train_seconds, 1e-9)),
        "checkpoints": p.checkpoints,
        "checkpoint_seconds": figures["checkpoint_seconds"],
        "sessions": p.sessions,
    }
