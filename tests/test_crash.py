"""Real processes: kill -9 at random moments, SIGTERM, and a second run refused with 75."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bigw2v import checkpoint, lock
from bigw2v.trainer import train

# 20 epochs of many small chunks, a checkpoint after every batch: about 2 s of
# training, more than half of it inside checkpoints, so kills land in both.
TRAIN_ARGS = ["--dim", "12", "--epochs", "20", "--threads", "1", "--chunk-words", "500",
              "--sample", "0", "--quiet"]


def bigw2v(*args, **kwargs):
    return [sys.executable, "-m", "bigw2v", *map(str, args)]


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.005)


def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_vectors(
        planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    modeldir = tmp_path / "m"
    rng = np.random.default_rng()
    delays = rng.uniform(0, 1.2, size=2)
    for delay in delays:
        proc = subprocess.Popen(bigw2v("train", workdir, "-o", modeldir, *TRAIN_ARGS,
                                       "--checkpoint-every", "1e-9", "--resume"),
                                stderr=subprocess.PIPE)
        # Training has started once a checkpoint exists (or the run ended already).
        wait_for(lambda: proc.poll() is not None or checkpoint.list_checkpoints(modeldir))
        time.sleep(delay)
        proc.kill()
        proc.wait()
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "--resume", "--json"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (delays, r.stderr)
    reference = tmp_path / "ref"
    train(workdir, str(reference), dim=12, epochs=20, threads=1, chunk_words=500, sample=0,
          progress=False)
    for name in ("vectors.npy", "output_vectors.npy"):
        ours = np.load(modeldir / name)
        assert np.all(np.isfinite(ours))
        assert np.array_equal(ours, np.load(reference / name)), (name, delays, r.stderr)


def test_sigterm_checkpoints_and_exits_130_then_resume_finishes(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    modeldir = tmp_path / "m"
    proc = subprocess.Popen(bigw2v("train", workdir, "-o", modeldir, *TRAIN_ARGS,
                                   "--checkpoint-every", "1000"),
                            stderr=subprocess.PIPE, text=True)
    while "training sg" not in proc.stderr.readline():  # the log line as training starts
        assert proc.poll() is None
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=60)[1]
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert proc.returncode == 130, stderr
    assert "SIGTERM" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert len(checkpoint.list_checkpoints(modeldir)) == 1
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 64 and "--resume" in r.stderr
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "--resume", "-q"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "resuming" in r.stderr, r.stderr


def test_a_second_run_on_a_locked_directory_exits_75_naming_the_holder(planted_workdir,
                                                                        tmp_path):
    workdir, _, corpus = planted_workdir
    modeldir = tmp_path / "m"
    with lock.hold(str(modeldir), "bigw2v train"):
        started = time.time()
        r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "-q"),
                           capture_output=True, text=True, timeout=300)
        assert time.time() - started < 30  # at once, not after waiting
    assert r.returncode == 75, r.stderr
    assert f"pid {os.getpid()}" in r.stderr and "bigw2v train" in r.stderr
    with lock.hold(str(tmp_path / "w"), "bigw2v count"):
        r = subprocess.run(bigw2v("count", corpus, "-o", tmp_path / "w"),
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 75 and f"pid {os.getpid()}" in r.stderr, r.stderr


def test_a_lock_left_by_a_killed_process_does_not_block(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    modeldir = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys, time; from bigw2v import lock\n"
                             f"with lock.hold({str(modeldir)!r}, 'test'):\n"
                             "    print('held', flush=True); time.sleep(600)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait()
    assert "test" in (modeldir / ".lock").read_text()  # its name is still written there
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "--dim", "8", "--epochs", "1",
                              "-q"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
