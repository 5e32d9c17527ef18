"""Pass 2 on a Ray cluster: one actor per node, Hogwild inside, hot rows synced often.

Each node runs one ``NodeTrainer`` actor with all its cores. The actor
encodes the corpus itself from the counted inputs (URIs or paths every node
sees; the vocabulary comes through the object store) into a cache on its own
disk, and trains its share of every epoch's chunks: chunk c goes to node
c mod N, so each node sees the whole corpus's mix, and the learning rate,
computed by the kernel from a sentence's global position, follows the global
word count as on one machine.

Nodes keep their own copy of both weight matrices and combine them on a
schedule after Intel's pWord2Vec (Ji et al.): training runs in rounds of
about ``sync_words`` words per node (100,000 a core of it by default); after
every round the ``hot_rows`` most frequent rows (rows 0..K-1: the
vocabulary is sorted by count) of the input
and output matrices are combined over the nodes, twice as many after every
second round, four times after every fourth, and so on, and every
``full_sync_every`` rounds (and at each epoch's end) all rows are. The
driver combines them through the object store, one round trip a round.
A synced row moves by the sum of the nodes' changes since its last sync
(``sync_mode`` "sum", the default: what Hogwild threads do to a shared row on
one machine), or to the mean of the nodes' rows (pWord2Vec's "average",
which divides every change by the number of nodes); docs/benchmarks.md
measures both.

The driver keeps the model directory as on one machine: at every full sync
it writes the combined weights into MODELDIR's weight files and, when due, a
checkpoint with the position (the next global chunk), so ``--resume`` after
a killed driver continues from there. An actor that dies mid-run is started
again and every node goes back to the last full sync, and the run finishes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .ray_count import connect, import_ray
from .settings import RAY_FULL_SYNC_EVERY, RAY_HOT_ROWS, RAY_SYNC_WORDS

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

    def checked(self):
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
    """One node's trainer: its own weights, its encoding of the corpus, its cores."""

    def __init__(self, workdir, manifest, words, counts, settings_dict, key, threads):
        import numba

        from .encode import EncodedCorpus, encode_slice, input_files
        from .settings import TrainSettings
        from .trainer import chunk_plan, prepare_job
        s = TrainSettings.from_dict(settings_dict)
        # The node's own encoding, kept on its disk for the runs (and restarts) after this one.
        directory = os.path.join(tempfile.gettempdir(), "bigw2v-ray-encoded", key)
        if not os.path.exists(os.path.join(directory, "encoded.json")):
            # Encoded beside, then renamed into place: nodes sharing a disk (several on
            # one machine) may encode at once; the first rename wins, the rest reuse it.
            private = f"{directory}.{os.getpid()}.tmp"
            encode_slice(input_files(manifest, workdir), words, private, int(counts.sum()),
                         threads=threads, progress=False, key=key,
                         normalize=manifest["settings"].get("normalize"))
            try:
                os.rename(private, directory)
            except OSError:
                shutil.rmtree(private, ignore_errors=True)
        self.corpus = EncodedCorpus(directory)
        self.chunk_starts = chunk_plan(self.corpus.sentence_starts, s.chunk_words)
        # The driver sends the starting weights (set_weights) before any training.
        vocab, dim = len(words), s.dim
        self.weights = {"vectors.npy": np.zeros((vocab, dim), np.float32)}
        if s.negative > 0:
            self.weights["output_vectors.npy"] = np.zeros((vocab, dim), np.float32)
        if s.hs:
            self.weights["hs_vectors.npy"] = np.zeros((vocab - 1, dim), np.float32)
        self.job = prepare_job(self.corpus.tokens, self.corpus.sentence_starts,
                               self.chunk_starts, counts, s, self.weights)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def plan(self):
        """(chunk_starts, token offset of each chunk boundary, sentences): equal on every node."""
        starts = self.corpus.sentence_starts
        return (self.chunk_starts, np.asarray(starts[self.chunk_starts]),
                int(starts.shape[0] - 1))

    def set_weights(self, weights):
        for name, matrix in weights.items():
            self.weights[name][...] = matrix

    def round(self, rows, combined, epoch, chunk_ids, send_rows):
        """Take the combined first ``rows`` rows, train ``chunk_ids``, send the first ``send_rows``.

        ``send_rows`` equal to the vocabulary size is a full sync: every matrix
        is sent whole, hierarchical-softmax node rows included.
        """
        from .trainer import RangeTotals, train_range
        if rows:
            for name, matrix in combined.items():
                self.weights[name][:rows] = matrix
        started = time.perf_counter()
        loss, terms, trained = 0.0, 0, 0
        for first, stop in _ranges(chunk_ids):
            t = train_range(self.job, epoch, first, stop)
            loss, terms, trained = loss + t.loss, terms + t.terms, trained + t.trained
        seconds = time.perf_counter() - started
        full = send_rows >= self.weights["vectors.npy"].shape[0]
        names = self.weights if full else [n for n in FREQUENCY_ORDERED if n in self.weights]
        sent = {name: self.weights[name][:send_rows].copy() for name in names} \
            if send_rows else {}
        return RangeTotals(loss, terms, trained), sent, seconds


# Matrices whose row i is the i-th most frequent word (synced by prefix, hottest
# first). Hierarchical-softmax node rows are indexed by tree node: full syncs only.
FREQUENCY_ORDERED = ("vectors.npy", "output_vectors.npy")


def _ranges(chunk_ids):
    """Consecutive chunk ids as (first, stop) pairs (train_range takes ranges)."""
    ids = list(chunk_ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        yield ids[i], ids[j] + 1
        i = j + 1


# ---------------------------------------------------------------- the driver


class Nodes:
    """The run's actors, one per node, started (and started again) by the driver."""

    def __init__(self, address, nodes, actor_args):
        from .ray_count import cluster_shape
        self.ray, self.connected = connect(address)
        alive, self.cpus = cluster_shape(self.ray)
        self.count = nodes or alive
        if self.count > alive:
            self.close()
            raise UsageError(f"--nodes {self.count}: the Ray cluster has {alive} node(s)")
        self.actor_args = actor_args
        self.actor_class = self.ray.remote(NodeTrainer).options(
            num_cpus=self.cpus, scheduling_strategy="SPREAD", max_restarts=0)
        self.actors = [self._start() for _ in range(self.count)]
        self.restarts = 0
        self.rounds = None

    def _start(self):
        return self.actor_class.remote(*self.actor_args, self.cpus)

    def plan(self):
        return self.ray.get(self.actors[0].plan.remote())

    def broadcast(self, mats):
        ref = self.ray.put({name: np.asarray(m) for name, m in mats.items()})
        self.ray.get([a.set_weights.remote(ref) for a in self.actors])

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
            self.actors[k] = self._start()
        return dead

    def close(self):
        for actor in getattr(self, "actors", []):
            try:
                self.ray.kill(actor)
            except Exception:  # already gone
                pass
        if self.connected:
            self.ray.shutdown()


class Rounds:
    """The syncing state between rounds, the last full sync to go back to, and the cost.

    ``seconds``: wall time of the rounds and full syncs; ``train_seconds``: of
    that, the slowest node's training in each round (the rest is syncing:
    moving rows, combining, waiting); ``bytes``: rows sent to and from the nodes.
    """

    def __init__(self, mats, p):
        self.combined = {}
        self.rows = 0
        self.last_full = None
        self.seconds = self.train_seconds = 0.0
        self.bytes = 0
        self.count = 0
        self.mark_full(mats, p)

    def mark_full(self, mats, p):
        import copy
        self.combined, self.rows = {}, 0
        self.last_full = ({name: np.array(m) for name, m in mats.items()}, copy.deepcopy(p))

    def back_to_last_full(self, mats, p):
        weights, saved = self.last_full
        for name, matrix in weights.items():
            mats[name][...] = matrix
        for name in saved.__dataclass_fields__:
            setattr(p, name, getattr(saved, name))
        self.combined, self.rows = {}, 0


def train_epochs(session, nodes, mats, p, saver, plan, bar):
    """The Ray version of ``trainer._run_epochs``: rounds of training and syncing.

    ``mats``: MODELDIR's weight files (the combined model, written at full
    syncs); ``p``: the Progress to advance (``next_chunk`` is a global chunk
    position); ``saver``: the run's Checkpointer.
    """
    from ray.exceptions import RayActorError
    s, sync = session.settings, session.options.ray_sync
    chunk_starts, chunk_token_starts, _ = plan
    n_chunks = chunk_starts.shape[0] - 1
    words_per_chunk = max(1, int(chunk_token_starts[-1]) // max(n_chunks, 1))
    sync_words = sync.sync_words or RAY_SYNC_WORDS * nodes.cpus
    per_round = max(1, sync_words // words_per_chunk) * nodes.count
    rounds = nodes.rounds = Rounds(mats, p)
    nodes.broadcast(mats)
    while p.epoch < s.epochs:
        try:
            _train_epoch(session, nodes, p, n_chunks, per_round, mats, saver, bar,
                         np.diff(chunk_token_starts), rounds)
        except RayActorError as exc:
            dead = nodes.restart_dead()
            _, saved = rounds.last_full
            log.warning("a Ray actor died (%s): node(s) %s started again; every node goes "
                        "back to the last full sync (epoch %d, chunk %d)",
                        str(exc).splitlines()[0], dead, saved.epoch + 1, saved.next_chunk)
            rounds.back_to_last_full(mats, p)
            nodes.broadcast(mats)


def _train_epoch(session, nodes, p, n_chunks, per_round, mats, saver, bar, chunk_tokens,
                 rounds):
    """One epoch from ``p.next_chunk``: rounds of chunks, rows combined after each."""
    ray, s, sync = nodes.ray, session.settings, session.options.ray_sync
    vocab = mats["vectors.npy"].shape[0]
    r = 0
    while p.next_chunk < n_chunks:
        r += 1
        first, stop = p.next_chunk, min(n_chunks, p.next_chunk + per_round)
        full = stop == n_chunks or r % sync.full_sync_every == 0
        send = vocab if full else hot_rows_of_round(r, sync, vocab)
        started = time.perf_counter()
        combined = ray.put(rounds.combined) if rounds.rows else None
        results = ray.get([
            a.round.remote(rounds.rows, combined, p.epoch,
                           [c for c in range(first, stop) if c % nodes.count == k], send)
            for k, a in enumerate(nodes.actors)])
        for totals, _, _ in results:
            p.loss_sum += totals.loss
            p.loss_terms += totals.terms
            p.trained_words += totals.trained
        received = sum(m.nbytes for m in rounds.combined.values()) * nodes.count
        rounds.combined = {name: _combine(mats[name], [sent[name] for _, sent, _ in results],
                                          sync.mode) for name in results[0][1]}
        rounds.bytes += received + sum(m.nbytes for _, sent, _ in results
                                       for m in sent.values())
        rounds.rows = send
        rounds.count += 1
        rounds.train_seconds += max(seconds for _, _, seconds in results)
        rounds.seconds += time.perf_counter() - started
        p.next_chunk = stop
        bar.update(int(chunk_tokens[first:stop].sum()))
        bar.set_postfix_str(f"epoch {p.epoch + 1}/{s.epochs} round {r} "
                            f"loss {p.loss_sum / max(p.loss_terms, 1):.4f}", refresh=False)
        if not full:
            continue
        started = time.perf_counter()
        _full_sync(nodes, mats, rounds)
        rounds.bytes += sum(np.asarray(m).nbytes for m in mats.values()) * nodes.count
        rounds.seconds += time.perf_counter() - started
        epoch_done = p.next_chunk == n_chunks
        if epoch_done:
            p.epoch_losses.append(p.loss_sum / max(p.loss_terms, 1))
            p.epoch += 1
            p.next_chunk = 0
            p.loss_sum, p.loss_terms = 0.0, 0
        rounds.mark_full(mats, p)
        if p.epoch < s.epochs and saver.due(saver.every or 0):
            saver.save()
        if epoch_done:
            return


def _combine(synced, node_rows, mode):
    """The nodes' first rows combined into ``synced`` (MODELDIR's copy); returns them.

    ``synced`` holds the rows as of their last sync. "sum": each row moves by
    the sum of the nodes' changes since then, as a shared row does under
    Hogwild threads on one machine; "average" (pWord2Vec's): the mean of the
    nodes' rows, which moves a row by the mean change, as if the learning rate
    were divided by the number of nodes. Measured on wiki1e8 (5 epochs, 2
    nodes): averaging lost 7 analogy points against a local run whether it ran
    every round or once an epoch; summing matched the local run.
    """
    rows = node_rows[0].shape[0]
    if mode == "average":
        combined = np.mean(node_rows, axis=0, dtype=np.float32)
    else:  # the synced rows plus every node's change since
        base = np.asarray(synced[:rows])
        combined = base + np.sum([r - base for r in node_rows], axis=0, dtype=np.float32)
    synced[:rows] = combined
    return combined


def _full_sync(nodes, mats, rounds):
    """Every node starts again from the combined model (``_combine`` wrote it into MODELDIR)."""
    nodes.broadcast(mats)


def run(session, workdir, words, counts, figures):
    """Train the session's run on Ray; returns model.json's content (``trainer._finish``)."""
    from . import trainer
    from .progress import progress_bar
    from .workdir import read_manifest
    s, sync = session.settings, session.options.ray_sync
    import_ray()
    manifest = read_manifest(workdir)
    started = time.time()
    nodes = Nodes(session.options.ray, sync.nodes,
                  (os.path.abspath(workdir), manifest, words, counts, s.to_dict(),
                   session.run["encoding_key"]))
    try:
        plan = nodes.plan()
        figures = {**figures, "encode_seconds": round(time.time() - started, 3)}
        chunk_starts, chunk_token_starts, sentences = plan
        mats, p = trainer._restore(session, words, chunk_starts)
        saver = trainer.Checkpointer(session, chunk_starts.shape[0] - 1, p)
        n_tokens = int(counts.sum())
        bar = progress_bar(n_tokens * s.epochs, f"train {s.model} on {nodes.count} Ray nodes",
                           enabled=session.options.progress)
        bar.update(p.epoch * n_tokens + int(chunk_token_starts[p.next_chunk]))
        startup = trainer.seconds_since_process_start()
        try:
            train_epochs(session, nodes, mats, p, saver, plan, bar)
        finally:
            bar.close()
        p.train_seconds = saver.train_seconds(time.time())
        r = nodes.rounds
        session.run["ray"] = {"nodes": nodes.count, "cores_per_node": nodes.cpus,
                              "sync_mode": sync.mode,
                              "sync_words": sync.sync_words or RAY_SYNC_WORDS * nodes.cpus,
                              "hot_rows": sync.hot_rows,
                              "full_sync_every": sync.full_sync_every,
                              "actor_restarts": nodes.restarts, "rounds": r.count,
                              "sync_share": round(1 - r.train_seconds / max(r.seconds, 1e-9), 4),
                              "bytes_moved": r.bytes,
                              "bytes_per_second": round(r.bytes / max(r.seconds, 1e-9))}
    finally:
        nodes.close()
    return trainer._finish(session, mats, words, counts, p, {
        **figures, "vocab_size": len(words), "sentences": sentences,
        "chunks": int(chunk_starts.shape[0] - 1), "startup_seconds": round(startup, 3),
        "checkpoint_seconds": round(saver.seconds, 3)})
