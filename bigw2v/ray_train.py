"""Pass 2 on a Ray cluster: one actor per node, Hogwild inside, hot rows synced often.

Each node runs one ``NodeTrainer`` actor with all its cores, on its own
slice of the corpus (``slices.py``: N consecutive slices of about equal
words, a large plain file cut by byte range). The actor encodes only its
slice, from the counted inputs (URIs or paths every node sees; the
vocabulary comes through the object store), into a cache on its own disk,
and trains it with the kernels of a local run; the sampling tables come
from the whole corpus's counts. Training runs in rounds (``Steps``): after
round r of R an epoch, every node has trained r/R of its slice's tokens, so
a round is about ``sync_words`` words on every node whatever its slice's
size, and the learning rate, which the kernel computes from a sentence's
position in the node's own slice, is the global fraction of the run on
every node, ending at ``min_alpha`` on each.

Nodes keep their own copy of both weight matrices and combine them on a
schedule after Intel's pWord2Vec (Ji et al.): training runs in rounds of
about ``sync_words`` words per node (100,000 a core of it by default); after
every round the ``hot_rows`` most frequent rows (rows 0..K-1: the
vocabulary is sorted by count) of the input
and output matrices are combined over the nodes, twice as many after every
second round, four times after every fourth, and so on, and every
``full_sync_every`` rounds (and at each epoch's end) all rows are. A node
sends its changes to the rows since it last sent them; the driver combines
them through the object store while the nodes train the next round, and a
node adds the other nodes' changes ``lag`` rounds later (1 by default: it
never waits for the driver between two rounds; 0: before its next round).
A synced row moves by the sum of the nodes' changes (``sync_mode`` "sum",
the default: what Hogwild threads do to a shared row on one machine), or
by their mean (pWord2Vec's "average": the mean of the nodes' rows, as if
every change were divided by the number of nodes); docs/benchmarks.md
measures both. Full syncs wait for every node: all start again from the
combined model.

The driver keeps the model directory as on one machine: it adds every
round's combined changes into its working copy (``mats``), whole at every full
sync, and then, when due, writes a
checkpoint with the position (the round of the epoch, and every node's next
chunk in its slice), so ``--resume`` after a killed driver continues from
there, on as many nodes as the run started with (run.json records them;
another count would cut other slices, and is refused). An actor that dies
mid-run is started again (it finds its slice's encoding on its disk, or
makes it again) and every node goes back to the last full sync, and the run
finishes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .atomic import write_json
from .errors import InputDataError, UsageError
from .modeldir import RUN_NAME
from .ray_count import connect, import_ray
from .settings import RAY_FULL_SYNC_EVERY, RAY_HOT_ROWS, RAY_SYNC_LAG, RAY_SYNC_WORDS
from .workdir import ENCODED_META

log = logging.getLogger("bigw2v")

ACTOR_RESTARTS = 3       # a dead actor is started again this many times in a run
SYNC_MODES = ("sum", "average")


@dataclass
class SyncSettings:
    """How the nodes train and combine their rows (recorded in model.json)."""

    nodes: int | None = None           # None: every node of the cluster
    mode: str = "sum"                  # how rows are combined: see _combine
    sync_words: int | None = None      # None: RAY_SYNC_WORDS for every core of a node
    hot_rows: int = RAY_HOT_ROWS
    full_sync_every: int = RAY_FULL_SYNC_EVERY
    lag: int = RAY_SYNC_LAG            # rounds a combine reaches the nodes late: see _train_segment

    def checked(self):
        if self.lag < 0:
            raise UsageError("--sync-lag must be 0 or more")
        for name in ("sync_words", "full_sync_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.mode not in SYNC_MODES:
            raise UsageError(f"--sync-mode must be one of {', '.join(SYNC_MODES)}, "
                             f"not {self.mode!r}")
        if self.hot_rows < 0 or (self.nodes is not None and self.nodes < 1):
            raise UsageError("--hot-rows must be 0 or more and --nodes at least 1")
        return self


def hot_rows_of_round(r: int, settings: SyncSettings, vocab_size: int) -> int:
    """How many of the most frequent rows round ``r`` (from 1) combines: K, 2K every 2nd, ..."""
    if settings.hot_rows == 0:
        return 0
    doubling = (r & -r).bit_length() - 1  # trailing zeros of r
    return min(vocab_size, settings.hot_rows << doubling)


# ---------------------------------------------------------------- the actor


class NodeTrainer:
    """One node's trainer: its own weights, its slice of the corpus (encoded here), its cores."""

    def __init__(self, words, counts, settings_dict, key, share, normalize, threads):
        import numba

        from .encode import EncodedCorpus
        from .settings import TrainSettings
        from .trainer import chunk_plan, prepare_job
        s = TrainSettings.from_dict(settings_dict)
        self.corpus = EncodedCorpus(_encoded_slice(share, words, key, normalize, threads))
        self.chunk_starts = chunk_plan(self.corpus.sentence_starts, s.chunk_words)
        self.chunk_token_starts = np.asarray(self.corpus.sentence_starts[self.chunk_starts])
        # The driver sends the starting weights (set_weights) before any training.
        vocab, dim = len(words), s.dim
        self.weights = {"vectors.npy": np.zeros((vocab, dim), np.float32)}
        if s.negative > 0:
            self.weights["output_vectors.npy"] = np.zeros((vocab, dim), np.float32)
        if s.hs:
            self.weights["hs_vectors.npy"] = np.zeros((vocab - 1, dim), np.float32)
        # The weights without this node's changes since it last sent them (rows it has
        # not sent since a full sync: as of that sync), and its changes sent in rounds
        # whose combined changes have not come back yet.
        self.reference = {name: m.copy() for name, m in self.weights.items()}
        self.sent = {}
        # The sampling tables come from the whole corpus's counts: a slice subsamples
        # and draws noise words as the whole corpus does.
        self.job = prepare_job(self.corpus.tokens, self.corpus.sentence_starts,
                               self.chunk_starts, counts, s, self.weights)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def plan(self):
        """(token offset of each of the slice's chunks and of its end, its sentences)."""
        return self.chunk_token_starts, int(self.corpus.sentence_starts.shape[0] - 1)

    def set_weights(self, weights):
        """Start again from ``weights`` (a full sync): nothing of this node's is unsent."""
        for name, matrix in weights.items():
            self.weights[name][...] = matrix
            self.reference[name][...] = matrix
        self.sent = {}

    def round(self, applied, change, epoch, first, stop, r, send_rows):
        """Take the combined ``change`` of round ``applied``, train chunks ``first..stop-1``
        of the slice as round ``r``, send this node's changes of the first ``send_rows`` rows.

        ``change`` holds every node's changes of round ``applied`` summed (or
        averaged); this node's own are already in its weights, so it adds the
        difference. ``send_rows`` equal to the vocabulary size is a full sync:
        every matrix is sent whole, hierarchical-softmax node rows included.
        """
        from .trainer import train_range
        own = self.sent.pop(applied, {})
        for name, rows in change.items():
            others = rows - own[name]
            self.weights[name][:rows.shape[0]] += others
            self.reference[name][:rows.shape[0]] += others
        started = time.perf_counter()
        totals = train_range(self.job, epoch, first, stop)
        seconds = time.perf_counter() - started
        self.corpus.release(int(self.chunk_token_starts[stop]))
        full = send_rows >= self.weights["vectors.npy"].shape[0]
        names = self.weights if full else [n for n in FREQUENCY_ORDERED if n in self.weights]
        sent = {}
        for name in names if send_rows else ():
            now, before = self.weights[name][:send_rows], self.reference[name][:send_rows]
            sent[name] = now - before
            before[...] = now
        if not full:
            self.sent[r] = sent
        return totals, sent, seconds


# Matrices whose row i is the i-th most frequent word (synced by prefix, hottest
# first). Hierarchical-softmax node rows are indexed by tree node: full syncs only.
FREQUENCY_ORDERED = ("vectors.npy", "output_vectors.npy")


def node_seed(seed, k):
    """The seed node ``k`` trains with: the kernel derives a chunk's random stream from
    (seed, epoch, chunk), and chunk numbers start again at 0 in every slice, so with one
    seed the nodes would draw the same noise words and subsampling at the same places."""
    return seed ^ (k << 48)


def slice_directory(share, key):
    """Where a node keeps its encoding of slice ``share`` of the corpus with encoding ``key``.

    On the node's own disk, named by the key and the slice's pieces.
    """
    name = f"{key}-{hashlib.sha256(repr(share.pieces).encode()).hexdigest()[:12]}"
    return os.path.join(tempfile.gettempdir(), "bigw2v-ray-encoded", name)


def _encoded_slice(share, words, key, normalize, threads):
    """The directory of this node's encoding of its slice (a ``slices.Slice``).

    Made on first use and kept for the runs (and restarts) after this one.
    """
    from .encode import encode_slice
    directory = slice_directory(share, key)
    name = os.path.basename(directory)
    if not os.path.exists(os.path.join(directory, ENCODED_META)):
        # Encoded beside, then renamed into place: nodes sharing a disk (several on
        # one machine) may encode at once; the first rename wins, the rest reuse it.
        private = f"{directory}.{os.getpid()}.tmp"
        encode_slice(list(share.pieces), words, private, share.most_tokens, threads=threads,
                     progress=False, key=name, normalize=normalize, at_most=True)
        try:
            os.rename(private, directory)
        except OSError:
            shutil.rmtree(private, ignore_errors=True)
    return directory


# ---------------------------------------------------------------- the driver


class Nodes:
    """The run's actors, one per node, started (and started again) by the driver."""

    def __init__(self, address, nodes):
        from .ray_count import cluster_shape
        self.ray, self.connected = connect(address)
        alive, self.cpus = cluster_shape(self.ray)
        self.count = nodes or alive
        self.actors = []
        if self.count > alive:
            self.close()
            raise UsageError(f"--nodes {self.count}: the Ray cluster has {alive} node(s)")
        self.restarts = 0
        self.rounds = None

    def start(self, actor_args):
        """Start node k's actor with ``actor_args[k]`` (and its cores), for every node."""
        self.actor_args = actor_args
        self.actor_class = self.ray.remote(NodeTrainer).options(
            num_cpus=self.cpus, scheduling_strategy="SPREAD", max_restarts=0)
        self.actors = [self._start(k) for k in range(self.count)]

    def _start(self, k):
        return self.actor_class.remote(*self.actor_args[k], self.cpus)

    def plans(self):
        """Every node's ``NodeTrainer.plan``, once each has encoded its slice."""
        return self.ray.get([a.plan.remote() for a in self.actors])

    def broadcast(self, mats):
        """Every node starts again from ``mats``; returns their object-store copy."""
        sent = self.ray.put({name: np.asarray(m) for name, m in mats.items()})
        self.send_weights(sent)
        return sent

    def send_weights(self, sent):
        """Every node starts again from ``sent``, weights already in the object store."""
        self.ray.get([a.set_weights.remote(sent) for a in self.actors])

    def restart_dead(self):
        """Start the actors that died again; returns their indices."""
        dead = []
        for k, actor in enumerate(self.actors):
            try:
                self.ray.get(actor.plan.remote(), timeout=60)
            except Exception:  # any failure to answer: start it again
                dead.append(k)
        self.restarts += len(dead)
        if self.restarts > ACTOR_RESTARTS:
            raise UsageError(f"Ray actors died {self.restarts} times in this run: giving up "
                             "(the run can be resumed with --resume)")
        for k in dead:
            self.actors[k] = self._start(k)
        return dead

    def close(self):
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone
                pass
        if self.connected:
            self.ray.shutdown()


class Steps:
    """The rounds of an epoch: how far each node has trained its slice after each.

    After round r of R, node k has trained its slice up to r/R of its tokens
    (to its first chunk boundary there or after), so the nodes walk their
    slices in step: a round is about the same number of words on every node
    (none waits for one given more), every node ends the epoch in round R,
    and each node's learning rate, which the kernel computes from the
    position in the node's own slice, is the run's global one.
    """

    def __init__(self, chunk_token_starts, sync_words):
        self.token_starts = chunk_token_starts      # per node: int64 [chunks + 1]
        total = sum(self.node_tokens)
        self.per_epoch = max(1, -(-total // (len(chunk_token_starts) * sync_words)))

    @property
    def node_tokens(self):
        return [int(t[-1]) for t in self.token_starts]

    @property
    def node_chunks(self):
        return [int(t.shape[0] - 1) for t in self.token_starts]

    def stops(self, r, positions):
        """Each node's chunk position after round ``r`` (from 1), from ``positions``."""
        return [max(at, int(np.searchsorted(t, int(t[-1]) * r // self.per_epoch)))
                for t, at in zip(self.token_starts, positions)]

    def tokens_before(self, positions):
        """Tokens of the epoch the nodes have trained at ``positions``, summed."""
        return sum(int(t[at]) for t, at in zip(self.token_starts, positions))


class Rounds:
    """The last full sync to go back to, and the cost of the rounds.

    ``seconds``: wall time of the rounds and full syncs; ``node_seconds``:
    each node's training in them (the rest of a node's time is syncing:
    moving rows, combining, waiting); ``bytes``: rows sent to and from the nodes.
    """

    def __init__(self, sent, p, node_count):
        self.last_full = None
        self.seconds = 0.0
        self.node_seconds = [0.0] * node_count
        self.bytes = 0
        self.count = 0
        self.mark_full(sent, p)

    @property
    def sync_share(self):
        """The share of the time the busiest node did not train."""
        return 1 - max(self.node_seconds, default=0.0) / max(self.seconds, 1e-9)

    def mark_full(self, sent, p):
        """Remember the full sync's weights (``sent``: the object-store copy broadcast to
        the nodes, kept instead of a copy in the driver's memory) and position."""
        import copy
        self.last_full = (sent, copy.deepcopy(p))

    def back_to_last_full(self, ray, mats, p):
        """Put ``mats`` and ``p`` back to the last full sync; returns its weights as sent."""
        sent, saved = self.last_full
        for name, matrix in ray.get(sent).items():
            mats[name][...] = matrix
        for name in saved.__dataclass_fields__:
            setattr(p, name, getattr(saved, name))
        return sent


def train_epochs(session, nodes, mats, p, saver, steps, bar):
    """The Ray version of ``trainer._run_epochs``: rounds of training and syncing.

    ``mats``: the run's working weights (the combined model: every round's
    combined changes are added, so it is whole at full syncs; written by
    checkpoints and at the end); ``p``: the Progress to advance
    (``next_chunk`` is the next round of the epoch, ``positions`` each node's
    next chunk); ``saver``: the run's Checkpointer; ``steps``: the nodes' ``Steps``.
    """
    from ray.exceptions import RayActorError
    s = session.settings
    rounds = nodes.rounds = Rounds(nodes.broadcast(mats), p, nodes.count)
    while p.epoch < s.epochs:
        try:
            _train_epoch(session, nodes, p, steps, mats, saver, bar, rounds)
        except RayActorError as exc:
            dead = nodes.restart_dead()
            _, saved = rounds.last_full
            log.warning("a Ray actor died (%s): node(s) %s started again; every node goes "
                        "back to the last full sync (epoch %d, round %d)",
                        str(exc).splitlines()[0], dead, saved.epoch + 1, saved.next_chunk)
            nodes.send_weights(rounds.back_to_last_full(nodes.ray, mats, p))


def _train_epoch(session, nodes, p, steps, mats, saver, bar, rounds):
    """One epoch from round ``p.next_chunk``: runs of rounds, each ended by a full sync."""
    s, sync = session.settings, session.options.ray_sync
    while p.next_chunk < steps.per_epoch:
        first = p.next_chunk + 1
        full = min(steps.per_epoch, -(-first // sync.full_sync_every) * sync.full_sync_every)
        started = time.perf_counter()
        _train_segment(session, nodes, p, steps, mats, bar, rounds, range(first, full + 1))
        # Every node starts again from the combined model (_combine wrote it into mats).
        sent = nodes.broadcast(mats)
        rounds.bytes += sum(np.asarray(m).nbytes for m in mats.values()) * nodes.count
        rounds.seconds += time.perf_counter() - started
        epoch_done = full == steps.per_epoch
        if epoch_done:
            p.epoch_losses.append(p.loss_sum / max(p.loss_terms, 1))
            p.epoch += 1
            p.next_chunk, p.positions = 0, [0] * nodes.count
            p.loss_sum, p.loss_terms = 0.0, 0
        rounds.mark_full(sent, p)
        if p.epoch < s.epochs and saver.due(saver.every or 0):
            saver.save()
        if epoch_done:
            return


def _train_segment(session, nodes, p, steps, mats, bar, rounds, numbers):
    """Rounds ``numbers`` (the last a full one): every node trains each, changes combined.

    The driver combines round r's changes while the nodes train on: a node
    gets them at the start of round r + 1 + ``sync.lag`` (lag 0: the next
    round, nothing trained in between; lag 1, the default: it has trained
    round r + 1 meanwhile), and adds the other nodes' changes to its rows, so
    summed changes add up exactly as with lag 0, one round late. The last
    round sends every row, and the full sync after it waits for every node.
    """
    ray, vocab = nodes.ray, mats["vectors.npy"].shape[0]
    sync, epochs = session.options.ray_sync, session.settings.epochs
    plan, at = [], p.positions
    for r in numbers:
        stops = steps.stops(r, at)
        send = vocab if r == numbers[-1] else hot_rows_of_round(r, sync, vocab)
        plan.append((r, at, stops, send))
        at = stops
    changes = {}   # round -> its combined changes, until a round's call takes them

    def start(i):
        r, starts, stops, send = plan[i]
        applied = r - 1 - sync.lag
        change = changes.pop(applied, {})
        ref = ray.put(change)
        rounds.bytes += sum(m.nbytes for m in change.values()) * nodes.count
        return [a.round.remote(applied, ref, p.epoch, first, stop, r, send)
                for a, first, stop in zip(nodes.actors, starts, stops)]

    running = [start(i) for i in range(min(sync.lag + 1, len(plan)))]
    for i, (r, starts, stops, send) in enumerate(plan):
        results = ray.get(running.pop(0))
        for totals, _, _ in results:
            p.loss_sum += totals.loss
            p.loss_terms += totals.terms
            p.trained_words += totals.trained
        sent = [changed for _, changed, _ in results]
        rounds.bytes += sum(m.nbytes for changed in sent for m in changed.values())
        change = {name: _combine(mats[name], [c[name] for c in sent], sync.mode)
                  for name in sent[0]}
        if send < vocab:
            changes[r] = change
        rounds.count += 1
        for k, (_, _, seconds) in enumerate(results):
            rounds.node_seconds[k] += seconds
        if i + sync.lag + 1 < len(plan):
            running.append(start(i + sync.lag + 1))
        bar.update(steps.tokens_before(stops) - steps.tokens_before(starts))
        p.positions, p.next_chunk = stops, r
        bar.set_postfix_str(f"epoch {p.epoch + 1}/{epochs} round {r}/{steps.per_epoch} "
                            f"loss {p.loss_sum / max(p.loss_terms, 1):.4f}", refresh=False)


def _combine(synced, changes, mode):
    """The nodes' changes to the first rows, combined and added to ``synced`` (MODELDIR's
    copy); returns the combined change.

    "sum": a row moves by the sum of the nodes' changes, as a shared row does
    under Hogwild threads on one machine; "average" (pWord2Vec's): by their
    mean, as if the learning rate were divided by the number of nodes.
    Measured on wiki1e8 (5 epochs, 2 nodes): averaging lost 7 analogy points
    against a local run whether it ran every round or once an epoch; summing
    matched the local run.
    """
    change = changes[0].copy()
    for other in changes[1:]:
        change += other
    if mode == "average":
        change /= len(changes)
    synced[:change.shape[0]] += change
    return change


def run(session, workdir, words, counts, figures):
    """Train the session's run on Ray; returns model.json's content (``trainer._finish``)."""
    from . import slices, trainer
    from .encode import input_files
    from .progress import progress_bar
    from .workdir import read_manifest
    s, sync = session.settings, session.options.ray_sync
    import_ray()
    manifest = read_manifest(workdir)
    inputs = input_files(manifest, workdir)
    normalize = manifest["settings"].get("normalize")
    nodes = Nodes(session.options.ray, sync.nodes)
    try:
        _record_nodes(session, nodes.count)
        shares = slices.plan(inputs, manifest["inputs"], nodes.count, normalize)
        started = time.time()
        words_ref, counts_ref = nodes.ray.put(words), nodes.ray.put(counts)
        nodes.start([(words_ref, counts_ref, {**s.to_dict(), "seed": node_seed(s.seed, k)},
                      session.run["encoding_key"], share, normalize)
                     for k, share in enumerate(shares)])
        plans = nodes.plans()
        figures = {**figures, "encode_seconds": round(time.time() - started, 3)}
        sync_words = sync.sync_words or RAY_SYNC_WORDS * nodes.cpus
        steps = Steps([t for t, _ in plans], sync_words)
        n_tokens = int(counts.sum())
        _check_coverage(steps, n_tokens, workdir)
        mats, p = trainer._restore(session, words, steps.node_chunks)
        p.positions = p.positions or [0] * nodes.count
        saver = trainer.Checkpointer(session, steps.node_chunks, p, mats)
        log.info("training %s on %d Ray nodes of %d cores: slices of %s tokens, %d rounds "
                 "an epoch; from epoch %d round %d (nodes at chunks %s)", s.model, nodes.count,
                 nodes.cpus, steps.node_tokens, steps.per_epoch, p.epoch + 1, p.next_chunk,
                 p.positions)
        bar = progress_bar(n_tokens * s.epochs, f"train {s.model} on {nodes.count} Ray nodes",
                           enabled=session.options.progress)
        bar.update(p.epoch * n_tokens + steps.tokens_before(p.positions))
        startup = trainer.seconds_since_process_start()
        try:
            train_epochs(session, nodes, mats, p, saver, steps, bar)
        finally:
            bar.close()
        p.train_seconds = saver.train_seconds(time.time())
        r = nodes.rounds
        session.run["ray"] = {"nodes": nodes.count, "cores_per_node": nodes.cpus,
                              "node_tokens": steps.node_tokens,
                              "sync_mode": sync.mode, "sync_words": sync_words,
                              "hot_rows": sync.hot_rows,
                              "full_sync_every": sync.full_sync_every,
                              "sync_lag": sync.lag,
                              "rounds_per_epoch": steps.per_epoch,
                              "actor_restarts": nodes.restarts, "rounds": r.count,
                              "sync_share": round(r.sync_share, 4),
                              "node_train_seconds": [round(t, 3) for t in r.node_seconds],
                              "bytes_moved": r.bytes,
                              "bytes_per_second": round(r.bytes / max(r.seconds, 1e-9))}
    finally:
        nodes.close()
    return trainer._finish(session, mats, words, counts, p, {
        **figures, "vocab_size": len(words), "sentences": sum(n for _, n in plans),
        "chunks": sum(steps.node_chunks), "startup_seconds": round(startup, 3),
        "checkpoint_seconds": round(saver.seconds, 3)})


def _record_nodes(session, count):
    """A new run records its node count in run.json; a resumed one must run on as many.

    Each node's slice, and its position in it, belong to the run: another
    count of nodes would cut the corpus differently.
    """
    recorded = session.run.get("ray_nodes")
    if not session.resuming:
        session.run["ray_nodes"] = count
        write_json(os.path.join(session.modeldir, RUN_NAME), session.run)
    elif recorded is None:
        raise UsageError(f"the run in {session.modeldir} was started on one machine: resume "
                         "it without --ray")
    elif recorded != count:
        raise UsageError(f"the run in {session.modeldir} was started on {recorded} Ray nodes, "
                         f"each training its own slice: resume it on {recorded} "
                         f"(--nodes {recorded}), not {count}")


def _check_coverage(steps, n_tokens, workdir):
    """The slices, encoded, must hold the counted corpus's tokens exactly once."""
    encoded = sum(steps.node_tokens)
    if encoded != n_tokens:
        raise InputDataError(f"the corpus has {'fewer' if encoded < n_tokens else 'more'} "
                             f"words than were counted: re-run `bigw2v count` on {workdir}")
