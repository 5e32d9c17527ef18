"""Checkpoints and resume: a run stopped anywhere continues to the same result."""

import os
import shutil

import numpy as np
import pytest

from bigw2v import checkpoint, load
from bigw2v.errors import InputDataError, UsageError
from bigw2v.trainer import train
from killing import killed_at

# Small chunks so that a tiny corpus still makes many batches to stop between.
RUN = dict(dim=12, epochs=2, threads=1, chunk_words=500, sample=0, progress=False)
BATCH = "bigw2v.kernels.train_chunks"


def killed_run(workdir, modeldir, function, call, when="after"):
    """A RUN checkpointing after every batch, killed by SIGKILL at a fixed point (no
    cleanup of any kind runs: see killing.py)."""
    killed_at(function, call, when, train=([workdir, modeldir],
                                           dict(checkpoint_every=1e-9, **RUN)))
    names = os.listdir(modeldir)
    assert "run.json" in names and "model.json" not in names, names


def weights(modeldir):
    return [np.load(os.path.join(modeldir, n)) for n in ("vectors.npy", "output_vectors.npy")]


@pytest.fixture(scope="module")
def reference(planted_workdir, tmp_path_factory):
    """An uninterrupted run with RUN settings."""
    modeldir = str(tmp_path_factory.mktemp("ref") / "m")
    info = train(planted_workdir[0], modeldir, **RUN)
    return modeldir, info


def test_a_run_killed_mid_epoch_resumes_to_bit_identical_vectors(planted_workdir, reference,
                                                                  tmp_path):
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    # Killed after batch 29 (epoch 2 of 2, 24 batches each), before its checkpoint.
    killed_run(workdir, modeldir, BATCH, 29)
    (number, newest), = checkpoint.list_checkpoints(modeldir)
    assert number == 28
    # The working weights are ahead of the checkpoint: the resume must not trust them.
    assert not np.array_equal(np.load(os.path.join(modeldir, "vectors.npy")),
                              np.load(os.path.join(newest, "vectors.npy")))
    info = train(workdir, modeldir, resume=True, progress=False)  # settings: the run's
    assert info["figures"]["sessions"] == 2 and info["settings"]["chunk_words"] == 500
    for ours, theirs in zip(weights(modeldir), weights(reference[0])):
        assert np.array_equal(ours, theirs)
    assert info["figures"]["epoch_losses"] == reference[1]["figures"]["epoch_losses"]
    # Finished: the run's bookkeeping is gone, the model loads.
    assert sorted(os.listdir(modeldir)) == [".lock", "model.json", "output_vectors.npy",
                                            "vectors.npy", "vocab.parquet"]
    assert len(load(modeldir)) == info["vocab_size"]


@pytest.mark.parametrize("copy_call", [2, 4])
def test_a_kill_inside_a_checkpoint_leaves_the_previous_one_usable(planted_workdir, reference,
                                                                    tmp_path, copy_call):
    # Each checkpoint writes two matrices: killed before write 2, inside the first checkpoint
    # (no checkpoint yet: the run restarts), before copy 4 inside the second.
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    killed_run(workdir, modeldir, "bigw2v.checkpoint.write_matrix", copy_call, when="before")
    assert any(n.endswith(".tmp") for n in os.listdir(modeldir))  # the half-written copy
    assert len(checkpoint.list_checkpoints(modeldir)) == copy_call // 2 - 1
    train(workdir, modeldir, resume=True, progress=False)
    for ours, theirs in zip(weights(modeldir), weights(reference[0])):
        assert np.array_equal(ours, theirs)


@pytest.fixture(scope="module")
def killed_once(planted_workdir, tmp_path_factory):
    """A run killed after batch 9 (checkpoint 8 the newest), made once; tests take copies."""
    modeldir = str(tmp_path_factory.mktemp("killed") / "m")
    killed_run(planted_workdir[0], modeldir, BATCH, 9)
    assert [n for n, _ in checkpoint.list_checkpoints(modeldir)] == [8]
    return modeldir


def stopped_run(killed_once, modeldir):
    shutil.copytree(killed_once, modeldir, symlinks=True)


def test_an_unfinished_run_needs_resume_or_force(planted_workdir, killed_once, tmp_path):
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    stopped_run(killed_once, modeldir)
    with pytest.raises(UsageError, match="unfinished run .*--resume.*--force"):
        train(workdir, modeldir, **RUN)
    with pytest.raises(UsageError, match="contradict"):
        train(workdir, modeldir, resume=True, force=True, progress=False)
    info = train(workdir, modeldir, force=True, **RUN)
    assert info["figures"]["sessions"] == 1


@pytest.mark.parametrize("overrides,message", [
    ({"dim": 20}, "dim 20 \\(the run has 12\\)"),
    ({"model": "cbow"}, "model cbow"),
    ({"epochs": 3}, "epochs 3"),
])
def test_resume_with_contradicting_settings_is_refused(planted_workdir, killed_once, tmp_path,
                                                        overrides, message):
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    stopped_run(killed_once, modeldir)
    with pytest.raises(UsageError, match=message):
        train(workdir, modeldir, resume=True, progress=False, **overrides)
    # Threads do not change the result: they may differ.
    info = train(workdir, modeldir, resume=True, progress=False, threads=2)
    assert info["settings"]["threads"] == 2 and info["settings"]["dim"] == 12


def test_resume_on_a_workdir_counted_again_is_refused(tmp_path):
    from bigw2v.counter import count
    from conftest import planted_topics
    corpus = tmp_path / "c.txt"
    corpus.write_text(planted_topics(n_sentences=1000)[1])
    workdir = str(tmp_path / "w")
    count([str(corpus)], workdir, min_count=1, threads=1, progress=False)
    modeldir = str(tmp_path / "m")
    killed_run(workdir, modeldir, BATCH, 2)
    with open(corpus, "a") as f:
        f.write("more words here\n")
    count([str(corpus)], workdir, min_count=1, threads=1, progress=False)
    with pytest.raises(InputDataError, match="changed since the run"):
        train(workdir, modeldir, resume=True, progress=False)


def damage(path, how):
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 7)
    else:
        with open(path, "r+b") as f:
            f.seek(200)
            byte = f.read(1)
            f.seek(200)
            f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("how,message", [("truncated", "truncated"),
                                         ("flipped", "checksum mismatch")])
def test_a_damaged_checkpoint_is_detected(planted_workdir, killed_once, tmp_path, how, message):
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    stopped_run(killed_once, modeldir)
    (_, newest), = checkpoint.list_checkpoints(modeldir)
    damage(os.path.join(newest, "vectors.npy"), how)
    with pytest.raises(InputDataError, match=f"{message}.*--force"):
        train(workdir, modeldir, resume=True, progress=False)


def test_a_damaged_checkpoint_falls_back_to_an_older_complete_one(planted_workdir, reference,
                                                                   killed_once, tmp_path):
    workdir = planted_workdir[0]
    modeldir = str(tmp_path / "m")
    stopped_run(killed_once, modeldir)
    (n, good), = checkpoint.list_checkpoints(modeldir)
    # Two checkpoints, as after a kill between renaming a new one into place and
    # deleting the old one; the newer one damaged.
    newer = os.path.join(modeldir, checkpoint.checkpoint_name(n + 1))
    shutil.copytree(good, newer)
    damage(os.path.join(newer, "output_vectors.npy"), "flipped")
    train(workdir, modeldir, resume=True, progress=False)
    for ours, theirs in zip(weights(modeldir), weights(reference[0])):
        assert np.array_equal(ours, theirs)


def test_resume_with_nothing_to_resume(planted_workdir, reference, tmp_path):
    workdir = planted_workdir[0]
    # A finished model: nothing to do, its summary comes back.
    info = train(workdir, reference[0], resume=True, progress=False)
    assert info["figures"] == reference[1]["figures"]
    # No run at all: a new one starts.
    info = train(workdir, str(tmp_path / "new"), resume=True, **RUN)
    assert info["complete"]
