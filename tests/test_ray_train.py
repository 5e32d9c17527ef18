"""`train --ray` on the real two-node Ray cluster of the test session: each node encodes and
trains only its slice of the corpus, the combined model is as good as a local one, a killed
actor and a killed driver (then --resume, from every node's position) still finish."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

import bigw2v
from bigw2v import checkpoint, slices
from bigw2v.encode import encoding_key, input_files
from bigw2v.errors import UsageError
from bigw2v.ray_train import SyncSettings, hot_rows_of_round, slice_directory
from bigw2v.workdir import encoding_dir, read_manifest, read_vocab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Many small chunks and rounds: hot-row rounds (16 of the 77 words), full syncs every
# 4 rounds and at epoch ends, all exercised on the planted-topics corpus (48k tokens).
OPTIONS = dict(dim=16, threads=1, chunk_words=1500, seed=5, progress=False)
SYNC = SyncSettings(sync_words=1500, hot_rows=16, full_sync_every=4)


def topic_accuracy(modeldir, topics):
    """Share of topic words whose nearest neighbour is in their own topic."""
    vectors = bigw2v.load(str(modeldir))
    hits = sum(any(n in topic for n, _ in vectors.most_similar(w, topn=1))
               for topic in topics for w in topic)
    return hits / sum(len(t) for t in topics)


def test_hot_rows_double_every_second_round_and_stop_at_the_vocabulary():
    s = SyncSettings(hot_rows=1024)
    assert [hot_rows_of_round(r, s, 10**6) for r in range(1, 9)] == \
        [1024, 2048, 1024, 4096, 1024, 2048, 1024, 8192]
    assert hot_rows_of_round(8, s, 3000) == 3000
    assert hot_rows_of_round(3, SyncSettings(hot_rows=0), 3000) == 0


@pytest.mark.parametrize("lag", [1, 0])
def test_two_nodes_train_as_well_as_one_machine(ray_cluster, planted_workdir, tmp_path, lag):
    workdir, topics, _ = planted_workdir
    info = bigw2v.train(workdir, str(tmp_path / "ray"), epochs=4, ray=ray_cluster,
                        ray_sync=dataclasses.replace(SYNC, lag=lag), **OPTIONS)
    local = bigw2v.train(workdir, str(tmp_path / "local"), epochs=4,
                         **{**OPTIONS, "threads": 2})
    assert info["ray"]["nodes"] == 2 and info["ray"]["hot_rows"] == 16
    assert info["ray"]["sync_lag"] == lag
    assert info["figures"]["chunks"] == pytest.approx(local["figures"]["chunks"], abs=1)
    assert info["figures"]["chunks"] > 20
    # Each node encoded only its slice, about half the corpus; read in order, the
    # slices' tokens are the local run's encoding: the corpus exactly once.
    n_tokens = info["figures"]["corpus_tokens"]
    assert sum(info["ray"]["node_tokens"]) == n_tokens
    assert info["ray"]["node_tokens"] == pytest.approx([n_tokens / 2] * 2, rel=0.02)
    manifest = read_manifest(workdir)
    key = encoding_key(read_vocab(workdir)[0], manifest)
    shares = slices.plan(input_files(manifest, workdir), manifest["inputs"], 2)
    node_tokens = [np.load(os.path.join(slice_directory(share, key), "tokens.npy"))
                   for share in shares]
    assert [t.shape[0] for t in node_tokens] == info["ray"]["node_tokens"]
    assert np.array_equal(np.concatenate(node_tokens),
                          np.load(os.path.join(encoding_dir(workdir, key), "tokens.npy")))
    # Every word of every epoch trained once, by one node or the other.
    assert info["figures"]["trained_words"] == pytest.approx(
        local["figures"]["trained_words"], rel=0.02)
    ray_loss, local_loss = info["figures"]["final_loss"], local["figures"]["final_loss"]
    assert ray_loss == pytest.approx(local_loss, rel=0.05)
    assert topic_accuracy(tmp_path / "ray", topics) >= 0.95
    on_disk = json.loads((tmp_path / "ray" / "model.json").read_text())
    assert on_disk["ray"] == info["ray"]


def _node_trainer():
    for proc in psutil.process_iter(["cmdline"]):
        if " ".join(proc.info["cmdline"] or []).startswith("ray::NodeTrainer"):
            return proc
    return None


def test_an_actor_killed_mid_run_is_restarted_and_the_run_finishes(ray_cluster, planted_workdir,
                                                                    tmp_path):
    workdir, topics, _ = planted_workdir
    modeldir = tmp_path / "m"
    result = {}
    thread = threading.Thread(target=lambda: result.update(info=bigw2v.train(
        workdir, str(modeldir), epochs=12, ray=ray_cluster, ray_sync=SYNC,
        checkpoint_every=1e-9, **OPTIONS)))
    thread.start()
    deadline = time.time() + 120
    while not list(modeldir.glob("checkpoint-*")):  # training has started
        assert time.time() < deadline and thread.is_alive(), "no checkpoint appeared"
        time.sleep(0.01)
    victim = _node_trainer()
    victim.send_signal(signal.SIGKILL)
    gone, _ = psutil.wait_procs([victim], timeout=10)
    assert gone == [victim]
    thread.join(300)
    info = result["info"]
    assert info["ray"]["actor_restarts"] >= 1
    assert len(info["figures"]["epoch_losses"]) == 12
    assert topic_accuracy(modeldir, topics) >= 0.95


def test_a_driver_killed_mid_run_resumes_with_ray(ray_cluster, planted_workdir, tmp_path):
    workdir, topics, _ = planted_workdir
    modeldir = tmp_path / "m"
    args = ["train", workdir, "-o", str(modeldir), "--epochs", "12", "--dim", "16",
            "--threads", "1", "--chunk-words", "1500", "--seed", "5", "--quiet",
            "--ray", ray_cluster, "--sync-words", "1500", "--hot-rows", "16",
            "--full-sync-every", "4", "--checkpoint-every", "1e-9"]
    driver = subprocess.Popen([sys.executable, "-m", "bigw2v", *args], cwd=REPO,
                              stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(list(modeldir.glob("checkpoint-*"))) == 0 or \
            not (modeldir / "checkpoint-000003").exists() and driver.poll() is None:
        assert time.time() < deadline and driver.poll() is None, driver.stderr.read()
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    assert driver.wait() == -signal.SIGKILL
    assert (modeldir / "run.json").exists() and not (modeldir / "model.json").exists()
    # The checkpoint holds every node's position in its own slice ...
    _, state = checkpoint.latest_good(str(modeldir))
    saved = state["progress"]
    assert len(saved["positions"]) == len(state["n_chunks"]) == 2
    assert (min(saved["positions"]) > 0) == (saved["next_chunk"] > 0)
    # ... which another number of nodes would not have: refused in one line.
    refused = subprocess.run([sys.executable, "-m", "bigw2v", *args, "--resume", "--nodes", "1"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == UsageError.exit_code
    assert "started on 2 Ray nodes" in refused.stderr and "Traceback" not in refused.stderr
    local = args[:args.index("--ray")] + ["--resume"]
    refused = subprocess.run([sys.executable, "-m", "bigw2v", *local], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == UsageError.exit_code and "resume it with --ray" in refused.stderr
    resumed = subprocess.run([sys.executable, "-m", "bigw2v", *args, "--resume", "--json"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (f"from epoch {saved['epoch'] + 1} round {saved['next_chunk']} "
            f"(nodes at chunks {saved['positions']})") in resumed.stderr
    info = json.loads(resumed.stdout)
    assert info["figures"]["sessions"] == 2
    assert len(info["figures"]["epoch_losses"]) == 12
    assert topic_accuracy(modeldir, topics) >= 0.95
