"""Issue 20, a new user's first hour: no silent overwrite, no stuck runs, plain exit codes.

Real subprocesses where the user meets the behaviour (exit codes, messages).
"""

import json
import os
import subprocess
import sys

import pytest

import bigw2v
from conftest import planted_topics

TINY = ["--dim", "8", "--epochs", "1", "--threads", "1", "--quiet"]


def run(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "bigw2v", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """A counted workdir and a finished model (dim 8) trained on it."""
    root = tmp_path_factory.mktemp("first-hour")
    corpus = root / "corpus.txt"
    corpus.write_text(planted_topics(n_sentences=300)[1])
    work, model = str(root / "work"), str(root / "model")
    bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False)
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    return root, work, model


def snapshot(modeldir):
    return {name: open(os.path.join(modeldir, name), "rb").read()
            for name in sorted(os.listdir(modeldir)) if name != ".lock"}


# ---------------------------------------------------------------- item 3


def test_a_finished_model_is_not_replaced_without_force(counted, tmp_path):
    root, work, _ = counted
    model = str(tmp_path / "m")
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    before = snapshot(model)
    r = run("train", work, "-o", model, *TINY, "--seed", "2")
    assert r.returncode == 64, r.stderr
    assert "holds a finished model" in r.stderr and "--force" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert snapshot(model) == before
    # Through a published link: refused, and the message names where the link goes.
    link = str(tmp_path / "latest")
    bigw2v.publish(model, link)
    r = run("train", work, "-o", link, *TINY, "--seed", "2")
    assert r.returncode == 64 and f"a link to {os.path.realpath(model)}" in r.stderr, r.stderr
    assert snapshot(model) == before
    # --resume on a finished model still does nothing and succeeds; --force replaces it.
    bigw2v.train(work, model, resume=True, progress=False)
    assert snapshot(model) == before
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, seed=2, force=True, progress=False)
    after = snapshot(model)
    assert after["vectors.npy"] != before["vectors.npy"]
    assert json.loads(after["model.json"])["settings"]["seed"] == 2
