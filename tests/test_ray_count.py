"""`count --ray` on a real two-node Ray cluster started by the tests: exact, interchangeable
with a local count, and unchanged by a worker killed mid-task or a driver killed mid-count."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigw2v import counter
from conftest import RAY_HOLD_FILE, planted_topics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_files(root, n=4, seed=0):
    """``n`` text inputs (one of them Parquet) with a Zipf-ish tail of rare words."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        text = planted_topics(n_sentences=400, seed=seed + i)[1]
        rare = " ".join(f"r{int(x)}" for x in rng.zipf(1.3, 3000) if x < 10**6)
        lines = (text + rare + "\n").splitlines()
        if i == 1:
            path = root / f"in{i}.parquet"
            pq.write_table(pa.table({"text": lines}), path, row_group_size=97)
        else:
            path = root / f"in{i}.txt"
            path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    return paths


def count(paths, workdir, **options):
    # small_input_bytes=0: every input its own group, so several Ray tasks.
    return counter.count(paths, str(workdir), min_count=2, threads=2, progress=False,
                         small_input_bytes=0, partitions=5, **options)


def vocab_bytes(workdir):
    return (workdir / "vocab.parquet").read_bytes()


def test_ray_count_equals_the_local_count_byte_for_byte(ray_cluster, tmp_path):
    paths = corpus_files(tmp_path)
    local = count(paths, tmp_path / "local")
    on_ray = count(paths, tmp_path / "ray", ray=ray_cluster)
    assert vocab_bytes(tmp_path / "ray") == vocab_bytes(tmp_path / "local")
    assert on_ray["totals"] == local["totals"] and on_ray["inputs"] == local["inputs"]
    summary = on_ray["last_run"]["ray"]
    assert summary["nodes"] == 2 and summary["tasks"] == len(paths) + 5  # groups + partitions
    shard = lambda wd: sorted(pq.read_table(wd / "shards" / "part-00002.parquet").to_pylist(),
                              key=lambda r: r["word"])
    assert shard(tmp_path / "ray") == shard(tmp_path / "local")


def test_local_and_ray_counts_continue_each_other(ray_cluster, tmp_path):
    paths = corpus_files(tmp_path, n=5, seed=3)
    workdir = tmp_path / "wd"
    count(paths[:3], workdir)                                   # local
    grown = count(paths[:4], workdir, ray=ray_cluster)          # Ray continues it
    assert grown["last_run"]["reused_inputs"] == 3 and grown["last_run"]["counted_inputs"] == 1
    count(paths[:4], tmp_path / "fresh4")
    assert vocab_bytes(workdir) == vocab_bytes(tmp_path / "fresh4")
    final = count(paths[1:], workdir)                           # local continues the Ray count
    assert final["last_run"] == {"reused_inputs": 3, "counted_inputs": 1, "dropped_inputs": 1,
                                 "up_to_date": False}
    count(paths[1:], tmp_path / "fresh")
    assert vocab_bytes(workdir) == vocab_bytes(tmp_path / "fresh")


def _ray_worker_running(task_name):
    import psutil
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith(f"ray::{task_name}"):
            return proc
    return None


def test_a_worker_killed_mid_task_is_retried_and_the_counts_are_unchanged(ray_cluster, tmp_path):
    paths = corpus_files(tmp_path, n=2, seed=7)
    count(paths, tmp_path / "local")
    open(RAY_HOLD_FILE, "w").close()  # tasks wait at their start while it exists
    try:
        import threading
        result = {}
        thread = threading.Thread(target=lambda: result.update(
            manifest=count(paths, tmp_path / "ray", ray=ray_cluster)))
        thread.start()
        deadline = time.time() + 60
        while (worker := _ray_worker_running("count_group_tables")) is None:
            assert time.time() < deadline, "no counting task started"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        import psutil
        gone, _ = psutil.wait_procs([worker], timeout=10)  # not our child: no exit code
        assert gone == [worker]
    finally:
        os.remove(RAY_HOLD_FILE)
    thread.join(120)
    assert not thread.is_alive() and "manifest" in result
    assert vocab_bytes(tmp_path / "ray") == vocab_bytes(tmp_path / "local")


def test_a_driver_killed_mid_count_reuses_the_groups_it_recorded(ray_cluster, tmp_path):
    paths = corpus_files(tmp_path, n=4, seed=11)
    workdir = tmp_path / "wd"
    # The last input's group waits at its start: the driver dies with the other groups
    # recorded and that one not (without it the groups could all finish before the kill).
    with open(RAY_HOLD_FILE, "w") as f:
        f.write(os.path.basename(paths[-1]))
    script = ("import sys, bigw2v; bigw2v.count(sys.argv[3:], sys.argv[1], min_count=2, "
              "threads=2, progress=False, small_input_bytes=0, partitions=5, ray=sys.argv[2])")
    driver = subprocess.Popen([sys.executable, "-c", script, str(workdir), ray_cluster, *paths],
                              cwd=REPO, stderr=subprocess.PIPE)
    records = lambda: [d for d in (workdir / "runs").glob("*/input.json")] \
        if (workdir / "runs").exists() else []
    deadline = time.time() + 120
    try:
        while len(records()) < len(paths) - 1 and driver.poll() is None:
            assert time.time() < deadline, "the groups not held were not recorded"
            time.sleep(0.01)
        driver.kill()
    finally:
        os.remove(RAY_HOLD_FILE)
    assert driver.wait() == -signal.SIGKILL, driver.stderr.read().decode()
    recorded = len(records())
    assert 1 <= recorded < len(paths)  # killed mid-count: some groups recorded, not all
    assert not (workdir / "count.json").exists()
    again = count(paths, workdir, ray=ray_cluster)
    assert again["last_run"]["reused_inputs"] >= recorded >= 1
    count(paths, tmp_path / "local")
    assert vocab_bytes(workdir) == vocab_bytes(tmp_path / "local")


def test_ray_without_the_extra_is_a_one_line_error(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a b c\n")
    code = ("import sys; sys.modules['ray'] = None; from bigw2v.cli import main; "
            f"sys.exit(main(['count', {str(path)!r}, '-o', {str(tmp_path / 'wd')!r}, '--ray']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 64, r.stderr
    assert "pip install 'bigw2v[ray]'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
