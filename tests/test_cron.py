"""bin/bigw2v-cron end to end: two rounds on a growing corpus directory."""

import json
import os
import re
import subprocess
import sys

import pytest

from bigw2v import evaluate_analogies, load
from conftest import REPO, planted_topics

CRON = os.path.join(REPO, "bin", "bigw2v-cron")
TRAIN = ["--", "--dim", "10", "--epochs", "2", "--threads", "1"]


def cron(root, corpus, *options, train=TRAIN):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    return subprocess.run([CRON, "--root", root, "--min-count", "2", *options, corpus, *train], env=env,
                          capture_output=True, text=True, timeout=600)


def test_two_rounds_count_new_text_warm_start_evaluate_and_publish(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics, text = planted_topics(n_sentences=1000, seed=1)
    (corpus / "day1.txt").write_text(text)
    questions = tmp_path / "q.txt"
    questions.write_text(f": t\n{topics[0][0]} {topics[0][1]} {topics[1][0]} {topics[1][1]}\n")
    root = tmp_path / "root"
    r = cron(root, corpus, "--analogies", questions)
    assert r.returncode == 0, r.stderr
    first = os.path.realpath(root / "models" / "latest")
    # eval.json is `bigw2v eval --json` of the published model; the log says its accuracy.
    scored = json.loads(open(os.path.join(first, "eval.json")).read())["analogies"]["total"]
    assert scored["questions"] == scored["answered"] == 1
    assert scored == evaluate_analogies(load(first), str(questions))["total"]
    logged = re.search(rf"analogy accuracy of {os.path.basename(first)}: ([0-9.]+)%", r.stderr)
    assert logged and float(logged.group(1)) == pytest.approx(100 * scored["accuracy"], abs=0.01)
    assert not (root / "models" / ".in-progress").exists()

    (corpus / "day2.txt").write_text(planted_topics(n_sentences=500, seed=2)[1])
    r = cron(root, corpus, "--analogies", questions)
    assert r.returncode == 0, r.stderr
    second = os.path.realpath(root / "models" / "latest")
    assert second != first and os.path.isdir(first)
    info = json.loads(open(os.path.join(second, "model.json")).read())
    shared = set(load(first).words) & set(load(second).words)
    assert info["init_from"] == first and info["warm_start"]["known_words"] == len(shared) > 0
    work = json.loads((root / "work" / "count.json").read_text())
    assert work["last_run"]["reused_inputs"] == 1 and work["last_run"]["counted_inputs"] == 1
    assert len(load(str(root / "models" / "latest"))) == info["vocab_size"]

    # A quality gate that is not met: trained, not published.
    (corpus / "day3.txt").write_text(planted_topics(n_sentences=300, seed=3)[1])
    r = cron(root, corpus, "--analogies", questions, "--min-accuracy", "101")
    assert r.returncode == 3 and "not publishing" in r.stderr
    assert os.path.realpath(root / "models" / "latest") == second


def test_a_second_wrapper_exits_75(tmp_path):
    import fcntl
    root = tmp_path / "root"
    root.mkdir()
    with open(root / ".cron.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        r = cron(root, tmp_path)
    assert r.returncode == 75 and "try again later" in r.stderr


def test_the_wrapper_recovers_after_a_failed_warm_start(tmp_path):
    """Issue 20: a --dim that contradicts the published model fails the night's run (64)
    without leaving a run to resume; the next night, with the options fixed, trains and
    publishes. A run left resumable by an older bigw2v (its warm start fails on every
    --resume) is started over with the night's options."""
    from bigw2v.encode import encoding_key
    from bigw2v.workdir import read_manifest, read_vocab
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "day1.txt").write_text(planted_topics(n_sentences=300, seed=1)[1])
    root = tmp_path / "root"
    models = root / "models"
    assert cron(root, corpus).returncode == 0
    first = os.path.realpath(models / "latest")

    r = cron(root, corpus, train=[*TRAIN[:1], "--dim", "12", *TRAIN[3:]])
    assert r.returncode == 64 and "dim 10" in r.stderr and "--dim 12" in r.stderr, r.stderr
    failed = (models / ".in-progress").read_text().strip()
    assert not (models / failed).exists()  # nothing resumable, not even an empty directory
    assert os.path.realpath(models / "latest") == first

    # The trap an older bigw2v left: run.json of a dim-12 run warm-started from `latest`.
    trap = models / failed
    trap.mkdir()
    info = json.loads(open(os.path.join(first, "model.json")).read())
    work = str(root / "work")
    words, counts = read_vocab(work)
    words = words[:int((counts >= 2).sum())]
    (trap / "run.json").write_text(json.dumps({
        "format": "bigw2v-run", "version": 1, "settings": {**info["settings"], "dim": 12},
        "encoding_key": encoding_key(words, read_manifest(work)), "workdir": work,
        "init_from": first, "vocab_size": len(words), "corpus_tokens": 1, "started": "x"}))
    r = cron(root, corpus)
    assert r.returncode == 0, r.stderr
    assert f"cannot resume {failed} (exit 64): starting it over" in r.stderr
    second = os.path.realpath(models / "latest")
    assert os.path.basename(second) == failed and second != first
    assert json.loads(open(os.path.join(second, "model.json")).read())["init_from"] == first
    assert not (models / ".in-progress").exists()


def test_the_wrapper_finds_bigw2v_under_crons_path_or_exits_127(tmp_path):
    """Cron's PATH (/usr/bin:/bin) has no bigw2v: the wrapper takes BIGW2V, else the
    repository's .venv; a BIGW2V that is not there is a one-line 127."""
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    missing = tmp_path / "no-corpus"  # count exits 66 at once: bigw2v was found and ran

    def wrapper(env):
        return subprocess.run([CRON, "--root", tmp_path / "root", missing], env=env,
                              capture_output=True, text=True, timeout=120)

    r = wrapper({**cron_env, "BIGW2V": os.path.join(os.path.dirname(sys.executable), "bigw2v")})
    assert r.returncode == 66 and "no such file" in r.stderr, r.stderr
    r = wrapper({**cron_env, "BIGW2V": str(tmp_path / "venv" / "bin" / "bigw2v")})
    assert r.returncode == 127, r.stderr
    assert "cannot run bigw2v" in r.stderr and "BIGW2V=" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    if os.access(os.path.join(REPO, ".venv", "bin", "bigw2v"), os.X_OK):
        r = wrapper(cron_env)
        assert r.returncode == 66, r.stderr
        assert os.path.join(REPO, ".venv", "bin", "bigw2v") + " count" in r.stderr
