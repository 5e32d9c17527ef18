"""Pass 1 on a Ray cluster: input groups counted by tasks, partitions merged by tasks.

The map is ``counter.count_group``: each group of inputs is a Ray task that
counts with its node's cores into runs on the node's own scratch disk, then
returns the group's counts as one Arrow table per partition through Ray's
object store (workers need no filesystem shared with the driver; they must
read the inputs, so inputs are URIs or paths every node sees). The driver
writes each finished group's runs into ``WORKDIR/runs/<group-key>/`` with
its ``input.json`` last, exactly as a local count would, so a local count
can continue a Ray count incrementally and the other way round, and a
driver killed mid-count reuses every group already recorded.

The reduce is ``runs.merge_partition``'s sum: one task per partition takes
that partition's tables (straight from the object store for groups just
counted; from the driver's runs for groups reused) and returns the summed
shard, which the driver writes with ``vocab.parquet`` and the manifest.

A worker process killed mid-task is retried by Ray (the task is a pure
function of its inputs), so the counts are unchanged.

Ray is an optional extra (``pip install 'bigw2v[ray]'``), imported only here.
"""

from __future__ import annotations

import logging
import os
import tempfile

import pyarrow as pa

from .atomic import atomic_write
from .counter import Counters, count_group
from .errors import UsageError
from .runs import (gather, group_key, partition_files, run_dirs, sum_tables, summarise,
                   write_group_record)
from .workdir import part_name, write_parquet, write_parquet_atomic

log = logging.getLogger("bigw2v")

# A failed task (its worker process died, its node went away) is run again this many times.
TASK_RETRIES = 3
# Seconds between two looks at the tasks still running (progress updates).
WAIT_SECONDS = 0.5
# At disconnect Ray waits to send the driver's last task events (what its dashboard
# shows of the tasks the driver submitted): 0.25 s of every command measured here, for
# monitoring data only, so the driver does not wait. A value the user set wins.
SHUTDOWN_FLUSH_ENV = ("RAY_task_events_shutdown_flush_timeout_ms", "0")


def import_ray():
    """The ray module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, an optional extra: pip install 'bigw2v[ray]'") from None
    return ray


def connect(address: str | None):
    """Join the Ray cluster at ``address`` (as ``ray.init`` takes it; None starts a local one).

    A process already connected (a test session, a notebook) keeps its
    connection. Returns (ray, whether this call connected: then the caller
    disconnects, which also stops a local cluster it started).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault(*SHUTDOWN_FLUSH_ENV)  # read when this process's Ray starts
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot connect to the Ray cluster at "
                         f"{address or 'a new local one'}: {reason}") from None
    return ray, True


def cluster_shape(ray) -> tuple[int, int]:
    """(alive nodes, CPUs of the smallest node): a task claims a whole node's cores."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = [int(n.get("Resources", {}).get("CPU", 0)) for n in nodes]
    cpus = [c for c in cpus if c > 0]
    return len(nodes), (min(cpus) if cpus else 1)


# ---------------------------------------------------------------- the tasks


def count_group_tables(inputs, partitions, spill_words, block_bytes, threads,
                       source_options) -> tuple:
    """Count one group on this node; return (records, run of partition 0, ..., partitions-1).

    The runs go to a scratch directory of this node and come back summed, one
    Parquet file's bytes per partition (None for an empty partition), so a
    group moves each distinct word once whatever the number of its runs, in
    the compact form the driver writes as it is (no decoding, no encoding).
    """
    _hold_for_tests(inputs)
    with tempfile.TemporaryDirectory(prefix="bigw2v-count-") as scratch:
        counters = Counters(threads, spill_words, source_options.get("normalize"))
        try:
            records = count_group(inputs, scratch, partitions=partitions,
                                  block_bytes=block_bytes, counters=counters,
                                  source_options=source_options)
        finally:
            counters.close()
        runs = run_dirs(scratch)
        tables = []
        for p in range(partitions):
            files = partition_files(runs, p)
            tables.append(_sum_files(files))
    return (records, *tables)


# Test-only: while the file named by this variable exists, counting tasks wait
# at their start (at most a minute), so a test can kill a worker mid-task. A
# file that names some text holds only the groups with an input whose path
# holds that text (so a test can let the other groups finish first).
HOLD_ENV = "BIGW2V_TEST_HOLD_FILE"


def _hold_for_tests(inputs):
    import time
    hold = os.environ.get(HOLD_ENV)
    deadline = time.time() + 60
    while hold and time.time() < deadline:
        try:
            with open(hold) as f:
                only = f.read().strip()
        except OSError:
            return
        if only and not any(only in inp.path for inp in inputs):
            return
        time.sleep(0.05)


def _sum_files(files) -> bytes | None:
    """The runs ``files`` of one partition as one Parquet file's bytes (summed if several)."""
    import pyarrow.parquet as pq
    if not files:
        return None
    if len(files) == 1:
        with open(files[0], "rb") as f:
            return f.read()
    sink = pa.BufferOutputStream()
    write_parquet(sum_tables([pq.read_table(f) for f in files]), sink)
    return sink.getvalue().to_pybytes()


def merge_tables(*runs: bytes | None) -> pa.Table:
    """One partition's runs (Parquet files' bytes) summed by word (the reduce task)."""
    import pyarrow.parquet as pq
    return sum_tables([pq.read_table(pa.BufferReader(r)) for r in runs if r])


# ---------------------------------------------------------------- the driver


class RayEngine:
    """``counter.count``'s two steps as Ray tasks (see ``counter.LocalEngine``)."""

    def __init__(self, address: str | None):
        import_ray()  # before any work: a missing extra is a one-line error
        self.address = address
        self.ray = None
        self.new_tables: dict[str, list] = {}   # group key -> refs of its partition tables
        self.shape = (0, 0)
        self.tasks = 0
        self.connected = False

    def count_groups(self, groups, runs_root, settings, bar) -> dict[str, dict]:
        """One task per group; each finished group's runs written by the driver, record last."""
        ray = self._ray()
        self.shape = nodes, cpus = cluster_shape(ray)
        log.info("counting %d group(s) of inputs on %d Ray node(s), %d core(s) a task",
                 len(groups), nodes, cpus)
        task = ray.remote(count_group_tables).options(
            num_returns=1 + settings.partitions, num_cpus=cpus, max_retries=TASK_RETRIES)
        pending = {}
        for group in groups:
            refs = task.remote(group, settings.partitions, settings.spill_words,
                               settings.block_bytes, cpus, settings.source_options())
            pending[refs[0]] = (group, refs[1:])
        self.tasks = len(pending)
        counted = {}
        done_groups = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=WAIT_SECONDS)
            for ref in ready:
                group, table_refs = pending.pop(ref)
                records = _get(ray, ref)
                key = group_key([inp.path for inp in group])
                self._write_group(runs_root, key, records, _get(ray, table_refs), settings)
                self.new_tables[key] = table_refs
                counted.update((r["path"], r) for r in records)
                done_groups += 1
                bar.update(sum(inp.size for inp in group))
                bar.set_postfix_str(f"groups {done_groups}/{self.tasks}", refresh=False)
        return counted

    @staticmethod
    def _write_group(runs_root, key, records, tables, settings):
        """A group's runs in WORKDIR/runs/<key>/00000/, then its record: as a local count's."""
        import shutil
        run_dir = os.path.join(runs_root, key)
        shutil.rmtree(run_dir, ignore_errors=True)
        directory = os.path.join(run_dir, "00000")
        os.makedirs(directory)
        for p, run in enumerate(tables):
            if run:
                with atomic_write(os.path.join(directory, part_name(p))) as f:
                    f.write(run)
        write_group_record(run_dir, records, settings.partitions, settings.source_options())

    def merge(self, workdir, settings) -> tuple[pa.Table, int, int]:
        """One task per partition sums its tables; the driver writes the shards."""
        from .workdir import RUNS_DIR, SHARDS_DIR
        ray = self._ray()
        runs_root = os.path.join(workdir, RUNS_DIR)
        reused = [d for d in run_dirs(runs_root)
                  if os.path.basename(os.path.dirname(d)) not in self.new_tables]
        merge = ray.remote(merge_tables).options(max_retries=TASK_RETRIES)
        merged_refs = []
        for p in range(settings.partitions):
            refs = [tables[p] for tables in self.new_tables.values()]
            refs += [ray.put(_read_bytes(f)) for f in partition_files(reused, p)]
            merged_refs.append(merge.remote(*refs))
        self.tasks += len(merged_refs)
        shards = os.path.join(workdir, SHARDS_DIR)
        os.makedirs(shards, exist_ok=True)
        summaries = []
        for p, ref in enumerate(merged_refs):
            merged = _get(ray, ref)
            if merged.num_rows:
                write_parquet_atomic(merged, os.path.join(shards, part_name(p)))
                summaries.append(summarise(merged, settings.min_count))
        return gather(summaries)

    def _ray(self):
        if self.ray is None:
            self.ray, self.connected = connect(self.address)
        return self.ray

    def close(self) -> None:
        if self.connected:
            self.ray.shutdown()
            self.connected = False

    def summary(self) -> dict:
        nodes, cpus = self.shape
        return {"ray": {"nodes": nodes, "cores_per_task": cpus, "tasks": self.tasks,
                        "address": self.address}}


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _get(ray, refs):
    """ray.get, with a task's own error (a bigw2v error: bad input) raised as itself."""
    from ray.exceptions import RayTaskError
    try:
        return ray.get(refs)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
