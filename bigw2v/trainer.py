"""Pass 2: train vectors on a counted workdir (epochs, schedule, threads, output).

The trainer does everything around the kernel: picks the vocabulary, encodes
the corpus (cached), builds the sampling tables, lays out the weights as
memory-mapped ``.npy`` files in the model directory, splits each epoch into
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
3. At the end the weights are flushed and fsynced, ``vocab.parquet`` and last
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

import numba
import numpy as np
import psutil

from . import checkpoint, kernels, lock, preflight, tables
from .atomic import write_json
from .encode import encode, encoding_key
from .errors import (Bigw2vError, InputDataError, MissingInputError, OutputError,
                     UsageError)
from .progress import progress_bar
from .settings import TrainSettings
from .workdir import read_manifest, read_vocab, write_vocab
from .warmstart import warm_start

log = logging.getLogger("bigw2v")

MODEL_FORMAT = "bigw2v-model"
MODEL_VERSION = 1
RUN_FORMAT = "bigw2v-run"
RUN_VERSION = 1
RUN_NAME = "run.json"
MODEL_FILES = ("model.json", "vocab.parquet", "vectors.npy", "output_vectors.npy",
               "hs_vectors.npy", "eval.json")  # eval.json: written by bin/bigw2v-cron

# Default seconds between checkpoints: at most ten minutes of work lost to a kill.
CHECKPOINT_EVERY = 600.0
# An epoch end is checkpointed unless one was written less than this long ago:
# an epoch that short is cheaper to redo than to copy the weights for.
EPOCH_CHECKPOINT_GAP = 5.0
# Settings that may differ when a run is resumed: they do not change the result.
RESUME_MAY_CHANGE = ("threads",)


class Interrupted(Bigw2vError):
    """SIGINT or SIGTERM during training: stopped after a checkpoint (exit 130)."""

    exit_code = 130


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

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


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
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False, "shape": (vocab_size, dim)})
        for start in range(0, vocab_size, rows):
            block = rng.random((min(vocab_size, start + rows) - start, dim), dtype=np.float32)
            block -= np.float32(0.5)
            block /= np.float32(dim)
            f.write(block.data)
    return np.load(path, mmap_mode="r+")


def zero_matrix(path, n_rows, dim):
    """A new all-zero weight file, mapped (mode w+ truncates: the file reads as zeros)."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, dim))


def weight_files(s):
    """The weight files a run with settings ``s`` has, in MODELDIR."""
    names = ["vectors.npy"]
    if s.negative > 0:
        names.append("output_vectors.npy")
    if s.hs:
        names.append("hs_vectors.npy")
    return names


# ---------------------------------------------------------------- the model directory


def _is_ours(name):
    return (name in MODEL_FILES or name == RUN_NAME or name.startswith(".")
            or checkpoint._NAME.match(name) is not None)


def check_model_dir(modeldir):
    """Refuse a MODELDIR that is a file or holds files that are not a bigw2v model."""
    if os.path.isfile(modeldir):
        raise OutputError(f"{modeldir} is a file, not a directory")
    if os.path.isdir(modeldir):
        extra = [n for n in os.listdir(modeldir) if not _is_ours(n)]
        if extra:
            raise OutputError(
                f"{modeldir} holds files that are not a bigw2v model ({', '.join(sorted(extra)[:3])}"
                "...): choose an empty or new directory")


def clear_model_dir(modeldir):
    """Remove an old model or run from MODELDIR, model.json first."""
    try:
        # Unmark the old model first: from here on, a crash leaves no valid-looking model.
        for name in MODEL_FILES + (RUN_NAME,):
            try:
                os.remove(os.path.join(modeldir, name))
            except FileNotFoundError:
                pass
        checkpoint.remove_all(modeldir)
        probe = os.path.join(modeldir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"cannot write to {modeldir}: {e.strerror}") from None


def _read_json(path):
    import json
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputDataError(f"{path} is unreadable ({e}): pass --force to start over") from None


def finished_model(modeldir):
    """model.json of a finished model in MODELDIR, or None."""
    info = _read_json(os.path.join(modeldir, "model.json"))
    if isinstance(info, dict) and info.get("format") == MODEL_FORMAT and info.get("complete"):
        return info
    return None


def _describe_run(modeldir, run):
    """Where an unfinished run got to, from its newest checkpoint (not verified)."""
    for path in [p for _, p in checkpoint.list_checkpoints(modeldir)][:1]:
        try:
            progress = _read_json(os.path.join(path, checkpoint.STATE_NAME))["progress"]
            return (f"checkpoint at epoch {progress['epoch'] + 1}/{run['settings']['epochs']}, "
                    f"chunk {progress['next_chunk']}")
        except (Bigw2vError, TypeError, KeyError):
            return "its newest checkpoint is unreadable"
    return "no checkpoint yet"


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


# ---------------------------------------------------------------- training


def train(workdir, modeldir, settings=None, progress=True, resume=False, force=False,
          init_from=None, checkpoint_every=CHECKPOINT_EVERY, preflight=True, **overrides):
    """Train on a counted WORKDIR into MODELDIR; returns the run's summary dict.

    ``settings`` is a TrainSettings; keyword overrides (e.g. ``model="cbow"``)
    apply on top of it. ``resume`` continues an unfinished run in MODELDIR
    (settings not given are the run's; given ones must agree with it);
    ``force`` starts over even when MODELDIR holds an unfinished run.
    ``init_from`` is a finished model to warm-start from. ``checkpoint_every``
    is in seconds; 0 or None turns checkpoints off. ``preflight`` False skips
    the memory and disk check made before anything is written (``preflight.py``).
    """
    if resume and force:
        raise UsageError("--resume and --force contradict each other: continue the run, or "
                         "start it over")
    if checkpoint_every is not None and checkpoint_every < 0:
        raise UsageError("--checkpoint-every must be 0 (off) or a number of seconds")
    checkpoint_every = checkpoint_every or None
    check_model_dir(modeldir)
    with lock.hold(modeldir, "bigw2v train"):
        return _train_locked(workdir, modeldir, settings, progress, resume, force, init_from,
                             checkpoint_every, preflight, overrides)


def _train_locked(workdir, modeldir, settings, progress, resume, force, init_from,
                  checkpoint_every, check_room, overrides):
    run = _read_json(os.path.join(modeldir, RUN_NAME))
    finished = finished_model(modeldir)
    unfinished = run is not None and finished is None
    if unfinished and not (resume or force):
        raise UsageError(f"{modeldir} holds an unfinished run "
                         f"({_describe_run(modeldir, run)}): pass "
                         "--resume to continue it, or --force to start over")
    if init_from is not None:
        init_from = os.path.realpath(init_from)  # a `latest` link may move on during the run
    resuming = resume and unfinished

    if resuming or (resume and finished is not None):
        # Options not given are the run's (threads too, which may differ when given);
        # given ones must agree with the run.
        recorded = run["settings"] if resuming else finished["settings"]
        s = _requested_settings(settings, overrides, recorded).resolved()
        conflicts = settings_conflicts(recorded, s.to_dict())
        recorded_init = run.get("init_from") if resuming else finished.get("init_from")
        if init_from is not None and init_from != recorded_init:
            conflicts.append(f"init-from {init_from} (the run has {recorded_init})")
        if conflicts:
            raise UsageError(f"--resume with settings that contradict the "
                             f"{'run' if resuming else 'finished model'} in {modeldir}: "
                             f"{'; '.join(conflicts)}. Leave them out to continue, "
                             "or pass --force to start over")
        if not resuming:
            log.info("%s already holds the finished model: nothing to resume", modeldir)
            return finished
        init_from = recorded_init
    else:
        s = _requested_settings(settings, overrides).resolved()
        if resume:
            log.info("nothing to resume in %s: starting a new run", modeldir)

    if not os.path.isdir(workdir):
        raise MissingInputError(f"{workdir} is not a counted workdir: run `bigw2v count` first")
    # The workdir lock covers reading the counts and writing the encoding: a
    # `bigw2v count` rewriting the workdir must not run under our feet.
    with lock.hold(workdir, "bigw2v train (encoding)"):
        manifest = read_manifest(workdir)
        all_words, all_counts = read_vocab(workdir)
        counted_min_count = int(manifest["settings"]["min_count"])
        words, counts, min_count = select_vocab(all_words, all_counts, counted_min_count, s)
        key = encoding_key(words, manifest)
        if resuming and key != run["encoding_key"]:
            raise InputDataError(
                f"the corpus or vocabulary of {workdir} changed since the run in {modeldir} "
                "started (it was counted again, or is another workdir): resume with the "
                "workdir it started on, or pass --force to start over on the new counts")
        if check_room:
            _preflight(workdir, modeldir, s, manifest, all_counts, len(words), key,
                       checkpoint_every is not None)
        if not resuming:
            clear_model_dir(modeldir)
            run = {"format": RUN_FORMAT, "version": RUN_VERSION,
                   "settings": {**s.to_dict(), "min_count": min_count},
                   "encoding_key": key, "workdir": os.path.abspath(workdir),
                   "init_from": init_from, "vocab_size": len(words),
                   "corpus_tokens": int(counts.sum()),
                   "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            write_json(os.path.join(modeldir, RUN_NAME), run)
        started = time.time()
        corpus, reused = encode(workdir, manifest, words, int(counts.sum()), threads=s.threads,
                                progress=progress, key=key)
        encode_seconds = time.time() - started
    return _run(corpus, words, counts, s, run, modeldir, resuming, progress, checkpoint_every,
                {"encode_seconds": round(encode_seconds, 3), "encoding_reused": reused})


def _preflight(workdir, modeldir, s, manifest, all_counts, vocab_size, key, checkpoints):
    """Check that the run fits in memory and on disk before anything is allocated."""
    sentences = preflight.sentences_bound(manifest, int(all_counts[:vocab_size].sum()))
    cached = os.path.exists(os.path.join(workdir, "encoded", key, "encoded.json"))
    replaced = preflight.reclaimable_in_model_dir(
        modeldir, lambda n: (n in MODEL_FILES or n == RUN_NAME or n.startswith(".checkpoint-")
                             or checkpoint._NAME.match(n) is not None))
    preflight.check_train(workdir, modeldir, s, all_counts, vocab_size, sentences, cached,
                          checkpoints, replaced)


def _open_weights(modeldir, s, words, init_from, found):
    """The working weight matrices: restored from a checkpoint, or freshly initialised."""
    vocab_size = len(words)
    paths = {name: os.path.join(modeldir, name) for name in weight_files(s)}
    warm = None
    if found is not None:
        checkpoint.restore(*found, modeldir)
        mats = {name: np.load(path, mmap_mode="r+") for name, path in paths.items()}
        for name, m in mats.items():
            expected = (vocab_size - 1 if name == "hs_vectors.npy" else vocab_size, s.dim)
            if m.shape != expected or m.dtype != np.float32:
                raise InputDataError(f"checkpoint {found[0]}: {name} has shape {m.shape}, "
                                     f"{expected} expected: pass --force to start over")
    else:
        mats = {"vectors.npy": init_input_vectors(paths["vectors.npy"], vocab_size, s.dim,
                                                  s.seed)}
        if s.negative > 0:
            mats["output_vectors.npy"] = zero_matrix(paths["output_vectors.npy"], vocab_size,
                                                     s.dim)
        if s.hs:
            mats["hs_vectors.npy"] = zero_matrix(paths["hs_vectors.npy"], vocab_size - 1, s.dim)
        if init_from is not None:
            warm = warm_start(init_from, words, s.dim, mats["vectors.npy"],
                              mats.get("output_vectors.npy"))
    return mats, warm


def _run(corpus, words, counts, s, run, modeldir, resuming, progress, checkpoint_every,
         figures_so_far):
    vocab_size = len(words)
    n_tokens = int(counts.sum())
    found = None
    if resuming:
        checkpoint.remove_leftovers(modeldir)
        found = checkpoint.latest_good(modeldir)
        if found is None:
            log.info("%s: the run has no checkpoint yet: starting it again from the "
                     "beginning", modeldir)
    mats, warm = _open_weights(modeldir, s, words, run.get("init_from"), found)
    if found is not None:
        if found[1].get("n_chunks") != int(chunk_plan(corpus.sentence_starts, s.chunk_words).shape[0] - 1):
            raise InputDataError(f"checkpoint {found[0]} was made with another chunk plan: "
                                 "pass --force to start over")
        p = Progress.from_dict(found[1]["progress"])
        p.sessions += 1
        log.info("resuming %s from %s: epoch %d/%d, chunk %d", modeldir,
                 os.path.basename(found[0]), p.epoch + 1, s.epochs, p.next_chunk)
    else:
        p = Progress()
    if warm is not None:
        run["warm_start"] = warm
        write_json(os.path.join(modeldir, RUN_NAME), run)

    keep_threshold = tables.keep_thresholds(counts, s.sample)
    noise_accept, noise_alias = tables.noise_alias_table(counts)
    if s.hs:
        path_starts, path_nodes, path_codes = tables.huffman_paths(counts)
    else:
        path_starts, path_nodes, path_codes = tables.empty_paths()
    unused = np.zeros((1, s.dim), dtype=np.float32)
    input_vectors = mats["vectors.npy"]
    output_vectors = mats.get("output_vectors.npy", unused)
    node_vectors = mats.get("hs_vectors.npy", unused)

    tokens = np.asarray(corpus.tokens)
    sentence_starts = corpus.sentence_starts
    chunk_starts = chunk_plan(sentence_starts, s.chunk_words)
    n_chunks = chunk_starts.shape[0] - 1
    chunk_tokens = np.diff(sentence_starts[chunk_starts])
    batch = max(1, 4 * s.threads)

    numba.set_num_threads(min(s.threads, numba.config.NUMBA_NUM_THREADS))
    bar = progress_bar(n_tokens * s.epochs, f"train {s.model}", enabled=progress)
    bar.update(p.epoch * n_tokens + int(chunk_tokens[:p.next_chunk].sum()))
    args = (s.model == "sg", tokens, sentence_starts, chunk_starts,
            keep_threshold, noise_accept, noise_alias, tables.sigmoid_table(),
            path_starts, path_nodes, path_codes, tables.longest_path(path_starts),
            np.asarray(input_vectors), np.asarray(output_vectors), np.asarray(node_vectors),
            s.window, s.negative, s.hs, s.cbow_mean,
            np.float32(s.alpha), np.float32(s.min_alpha))
    names = weight_files(s)
    # Load the compiled kernel now (a batch of no chunks), so that start-up below
    # covers it and train_seconds is training alone.
    no_chunks = np.empty(0, dtype=np.int64)
    kernels.train_chunks(no_chunks, *args, p.epoch, s.epochs, s.seed,
                         np.empty(0, dtype=np.float64), no_chunks, no_chunks)
    session_started = time.time()
    # The wait a `bigw2v train` user sees before the bar moves, encoding included.
    startup_seconds = seconds_since_process_start()
    seconds_before = p.train_seconds
    last_checkpoint = time.time()
    checkpoint_seconds = 0.0

    def save():
        nonlocal last_checkpoint, checkpoint_seconds
        t0 = time.time()
        p.train_seconds = seconds_before + (t0 - session_started)
        existing = checkpoint.list_checkpoints(modeldir)
        number = max(p.checkpoints, existing[0][0] if existing else 0) + 1
        p.checkpoints = number
        checkpoint.write(modeldir, number, names,
                         {"progress": asdict(p), "encoding_key": run["encoding_key"],
                          "settings": run["settings"], "n_chunks": int(n_chunks),
                          "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        last_checkpoint = time.time()
        checkpoint_seconds += last_checkpoint - t0

    def due(interval):
        return checkpoint_every is not None and time.time() - last_checkpoint >= interval

    with StopFlag() as stop:
        log.info("training %s on %d words x %d epochs, %d chunks per epoch, from epoch %d "
                 "chunk %d; checkpoints %s", s.model, n_tokens, s.epochs, n_chunks, p.epoch + 1,
                 p.next_chunk, f"every {checkpoint_every:g} s" if checkpoint_every else "off")
        try:
            while p.epoch < s.epochs:
                while p.next_chunk < n_chunks:
                    ids = np.arange(p.next_chunk, min(n_chunks, p.next_chunk + batch),
                                    dtype=np.int64)
                    loss = np.zeros(ids.shape[0], dtype=np.float64)
                    terms = np.zeros(ids.shape[0], dtype=np.int64)
                    trained = np.zeros(ids.shape[0], dtype=np.int64)
                    kernels.train_chunks(ids, *args, p.epoch, s.epochs, s.seed, loss, terms,
                                         trained)
                    p.next_chunk = int(ids[-1]) + 1
                    corpus.release(int(sentence_starts[chunk_starts[p.next_chunk]]))
                    p.loss_sum += float(loss.sum())
                    p.loss_terms += int(terms.sum())
                    p.trained_words += int(trained.sum())
                    done = p.epoch * n_tokens + int(sentence_starts[chunk_starts[p.next_chunk]])
                    alpha = s.alpha - (s.alpha - s.min_alpha) * done / (n_tokens * s.epochs)
                    bar.set_postfix_str(f"epoch {p.epoch + 1}/{s.epochs} lr {alpha:.5f} "
                                        f"loss {p.loss_sum / max(p.loss_terms, 1):.4f}",
                                        refresh=False)
                    bar.update(int(chunk_tokens[ids].sum()))
                    if stop.signal is not None:
                        break
                    if p.next_chunk < n_chunks and due(checkpoint_every):
                        save()
                if stop.signal is None or p.next_chunk == n_chunks:
                    p.epoch_losses.append(p.loss_sum / max(p.loss_terms, 1))
                    p.epoch += 1
                    p.next_chunk = 0
                    p.loss_sum, p.loss_terms = 0.0, 0
                if stop.signal is not None and p.epoch < s.epochs:
                    if checkpoint_every is not None:
                        save()
                    raise Interrupted(
                        f"stopped by {signal.Signals(stop.signal).name} at epoch "
                        f"{p.epoch + 1}/{s.epochs}, chunk {p.next_chunk}"
                        + (": pass --resume to continue" if checkpoint_every is not None
                           else " (checkpoints are off: the run must start over)"))
                if p.epoch < s.epochs and due(min(EPOCH_CHECKPOINT_GAP, checkpoint_every or 0)):
                    save()
        finally:
            bar.close()
    p.train_seconds = seconds_before + (time.time() - session_started)

    for name, m in mats.items():
        m.flush()
        checkpoint.fsync_path(os.path.join(modeldir, name))
    write_vocab(os.path.join(modeldir, "vocab.parquet"), words, counts)
    figures = {
        "vocab_size": vocab_size,
        "corpus_tokens": n_tokens,
        "sentences": int(sentence_starts.shape[0] - 1),
        "chunks": int(n_chunks),
        "trained_words": p.trained_words,
        "epoch_losses": [round(x, 6) for x in p.epoch_losses],
        "final_loss": round(p.epoch_losses[-1], 6),
        **figures_so_far,
        "startup_seconds": round(startup_seconds, 3),
        "train_seconds": round(p.train_seconds, 3),
        "words_per_second": round(n_tokens * s.epochs / max(p.train_seconds, 1e-9)),
        "checkpoints": p.checkpoints,
        "checkpoint_seconds": round(checkpoint_seconds, 3),
        "sessions": p.sessions,
    }
    info = {
        "format": MODEL_FORMAT, "version": MODEL_VERSION, "complete": True,
        "vocab_size": vocab_size, "dim": s.dim,
        "settings": {**run["settings"], "threads": s.threads},
        "figures": figures,
        "workdir": run["workdir"],
        "init_from": run.get("init_from"),
        "warm_start": run.get("warm_start"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.join(modeldir, "model.json"), info)
    checkpoint.fsync_path(modeldir)
    # The model is finished and marked so; what follows is tidying up.
    try:
        os.remove(os.path.join(modeldir, RUN_NAME))
    except FileNotFoundError:
        pass
    checkpoint.remove_all(modeldir)
    return info
