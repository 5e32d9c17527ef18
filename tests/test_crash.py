"""Real processes: kill -9 at fixed points, SIGTERM, and a second run refused with 75."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bigw2v import checkpoint, load, lock
from bigw2v.trainer import train
from killing import killed_at

# 20 epochs of many small chunks: about 2 s of training, for a signal to land in.
TRAIN_ARGS = ["--dim", "12", "--epochs", "20", "--threads", "1", "--chunk-words", "500",
              "--sample", "0", "--quiet"]


def bigw2v(*args, **kwargs):
    return [sys.executable, "-m", "bigw2v", *map(str, args)]


# For the kill -9 tests: 3 epochs of 96 chunks of 500 words, 4 chunks a batch on one
# thread (24 batches an epoch), a checkpoint after every batch.
KILL_ARGS = ["--dim", "12", "--epochs", "3", "--threads", "1", "--chunk-words", "500",
             "--sample", "0", "--checkpoint-every", "1e-9", "--quiet"]
BATCH = "bigw2v.kernels.train_chunks"


def assert_unfinished(modeldir, newest_checkpoint):
    """What a kill leaves: the run's record, no model, the newest checkpoint only, and
    working weights ahead of that checkpoint (the killed batch had updated them)."""
    names = os.listdir(modeldir)
    assert "run.json" in names and "model.json" not in names, names
    assert [n for n, _ in checkpoint.list_checkpoints(modeldir)] == [newest_checkpoint]
    saved = os.path.join(modeldir, checkpoint.checkpoint_name(newest_checkpoint), "vectors.npy")
    assert not np.array_equal(np.load(modeldir / "vectors.npy"), np.load(saved))


def test_kill_9_twice_at_fixed_points_then_resume_gives_the_uninterrupted_vectors(
        planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    modeldir = tmp_path / "m"
    command = ["train", workdir, "-o", modeldir, *KILL_ARGS]
    # Killed right after batch 2 trained, before its checkpoint: checkpoint 1 is the newest.
    stderr = killed_at(BATCH, 2, argv=command)
    assert "Traceback" not in stderr
    assert_unfinished(modeldir, 1)
    # The resumed run killed after its 6th batch (epoch 1, batch 7; checkpoints 2..6 written).
    stderr = killed_at(BATCH, 6, argv=command + ["--resume"])
    assert "resuming" in stderr and "checkpoint-000001" in stderr
    assert_unfinished(modeldir, 6)
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "--resume", "--json"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["figures"]["sessions"] == 3
    assert "checkpoint-000006" in r.stderr
    assert "model.json" in os.listdir(modeldir) and "run.json" not in os.listdir(modeldir)
    reference = tmp_path / "ref"
    train(workdir, str(reference), dim=12, epochs=3, threads=1, chunk_words=500, sample=0,
          progress=False)
    for name in ("vectors.npy", "output_vectors.npy"):
        ours = np.load(modeldir / name)
        assert np.all(np.isfinite(ours))
        assert np.array_equal(ours, np.load(reference / name)), name


def topic_purity(modeldir, topics):
    """Mean share, over all planted words, of their nearest neighbours in their own topic."""
    vectors = load(str(modeldir))
    shares = []
    for topic in topics:
        for word in topic:
            near = [w for w, _ in vectors.most_similar(word, topn=len(topic) - 1)]
            shares.append(sum(w in topic for w in near) / len(near))
    return float(np.mean(shares))


def test_a_killed_two_thread_run_resumes_to_vectors_as_good_as_one_threads(
        planted_workdir, tmp_path):
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one core: no second thread")
    workdir, topics, _ = planted_workdir
    modeldir = tmp_path / "m"
    args = ["--dim", "12", "--epochs", "3", "--chunk-words", "500", "--sample", "0",
            "--checkpoint-every", "1e-9", "--quiet"]
    killed_at(BATCH, 3, argv=["train", workdir, "-o", modeldir, *args, "--threads", "2"])
    assert_unfinished(modeldir, 2)
    r = subprocess.run(bigw2v("train", workdir, "-o", modeldir, "--resume", "--json"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    two = json.loads(r.stdout)
    assert two["settings"]["threads"] == 2 and two["figures"]["sessions"] == 2
    one = train(workdir, str(tmp_path / "one"), dim=12, epochs=3, threads=1, chunk_words=500,
                sample=0, progress=False)
    # Hogwild on two threads is not bit-reproducible; its quality must be one thread's.
    assert two["figures"]["final_loss"] == pytest.approx(one["figures"]["final_loss"], rel=0.01)
    purity_one, purity_two = topic_purity(tmp_path / "one", topics), topic_purity(modeldir, topics)
    assert purity_one > 0.95 and purity_two > 0.95, (purity_one, purity_two)


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
