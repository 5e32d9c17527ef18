"""Incremental count, warm start, and publishing: the pieces of cron-driven retraining."""

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from bigw2v import load
from bigw2v.errors import InputDataError, MissingInputError, UsageError
from bigw2v.publisher import publish
from bigw2v.trainer import train
from bigw2v.counter import count
from bigw2v.runs import group_key, input_key
from bigw2v.workdir import INPUT_RECORD, RUNS_DIR, read_vocab
from conftest import planted_topics

OPTIONS = dict(min_count=2, threads=1, progress=False, spill_words=40)


@pytest.fixture(params=["alone", "grouped"])
def grouping(request):
    """Count options, and how many inputs a change makes count again.

    "alone": every input has its own runs, so one changed input is counted
    again alone; "grouped": the three small inputs share one group, which is
    counted again whole.
    """
    if request.param == "alone":
        return {**OPTIONS, "small_input_bytes": 0}, 1
    return dict(OPTIONS), 3


@pytest.fixture
def texts(tmp_path):
    """Three inputs with overlapping, differently distributed words."""
    paths = []
    for i, (seed, n) in enumerate([(1, 300), (2, 200), (3, 250)]):
        path = tmp_path / f"part{i}.txt"
        path.write_text(planted_topics(n_sentences=n, seed=seed, n_topics=4 + i)[1])
        paths.append(str(path))
    return paths


def vocab_bytes(workdir):
    with open(os.path.join(workdir, "vocab.parquet"), "rb") as f:
        return f.read()


def assert_same_as_fresh(workdir, inputs, tmp_path):
    fresh = str(tmp_path / "fresh")
    count(inputs, fresh, **OPTIONS)
    assert pq.read_table(os.path.join(workdir, "vocab.parquet")).equals(
        pq.read_table(os.path.join(fresh, "vocab.parquet")))
    assert vocab_bytes(workdir) == vocab_bytes(fresh)
    for p in range(16):
        name = os.path.join("shards", f"part-{p:05d}.parquet")
        a, b = os.path.join(workdir, name), os.path.join(fresh, name)
        assert os.path.exists(a) == os.path.exists(b)
        if os.path.exists(a):
            assert pq.read_table(a).sort_by("word").equals(pq.read_table(b).sort_by("word"))


def test_more_inputs_count_only_the_new_ones_and_equal_a_fresh_count(texts, tmp_path, grouping):
    options, _ = grouping
    workdir = str(tmp_path / "w")
    count(texts[:2], workdir, **options)
    manifest = count(texts, workdir, **options)
    assert manifest["last_run"] == {"reused_inputs": 2, "counted_inputs": 1,
                                    "dropped_inputs": 0, "up_to_date": False}
    assert_same_as_fresh(workdir, texts, tmp_path)


def test_a_changed_input_is_recounted_not_added_twice(texts, tmp_path, grouping):
    options, recounted = grouping
    workdir = str(tmp_path / "w")
    count(texts, workdir, **options)
    with open(texts[1], "a") as f:
        f.write("t0w1 t0w2 brandnew brandnew\n")
    manifest = count(texts, workdir, **options)
    assert manifest["last_run"]["counted_inputs"] == recounted
    assert_same_as_fresh(workdir, texts, tmp_path)


def test_inputs_no_longer_named_are_dropped(texts, tmp_path, grouping):
    options, _ = grouping
    workdir = str(tmp_path / "w")
    count(texts, workdir, **options)
    manifest = count(texts[1:], workdir, **options)
    assert manifest["last_run"]["dropped_inputs"] == 1
    assert_same_as_fresh(workdir, texts[1:], tmp_path)


def test_nothing_new_is_a_no_op_that_keeps_the_encoding(texts, tmp_path):
    workdir = str(tmp_path / "w")
    count(texts, workdir, **OPTIONS)
    train(workdir, str(tmp_path / "m"), dim=8, epochs=1, progress=False)
    manifest = count(texts, workdir, **OPTIONS)
    assert manifest["last_run"]["up_to_date"] is True
    info = train(workdir, str(tmp_path / "m2"), dim=8, epochs=1, progress=False)
    assert info["figures"]["encoding_reused"] is True
    # New input: the old encodings can never be used again and are removed.
    count(texts + [texts[0]], workdir, **OPTIONS)  # the same file twice is one input
    assert os.path.isdir(os.path.join(workdir, "encoded"))
    extra = tmp_path / "extra.txt"
    extra.write_text("t0w1 t0w1 t0w2\n")
    count(texts + [str(extra)], workdir, **OPTIONS)
    assert not os.path.exists(os.path.join(workdir, "encoded"))


def test_an_input_whose_count_was_killed_is_counted_again(texts, tmp_path, grouping):
    options, recounted = grouping
    workdir = str(tmp_path / "w")
    count(texts, workdir, **options)
    # As if the count had been killed before the input's record was written.
    key = input_key(texts[2]) if recounted == 1 else group_key(texts)
    os.remove(os.path.join(workdir, RUNS_DIR, key, INPUT_RECORD))
    os.remove(os.path.join(workdir, "count.json"))
    manifest = count(texts, workdir, **options)
    assert manifest["last_run"]["counted_inputs"] == recounted
    assert_same_as_fresh(workdir, texts, tmp_path)


# ---------------------------------------------------------------- warm start


@pytest.fixture(scope="module")
def old_and_grown(tmp_path_factory):
    """A model on 4 topics, and a workdir with topics 0-2 and two new ones."""
    tmp_path = tmp_path_factory.mktemp("grown")
    old_text = tmp_path / "old.txt"
    old_text.write_text(planted_topics(n_topics=4, n_sentences=1500, seed=5)[1])
    count([str(old_text)], str(tmp_path / "w-old"), min_count=1, threads=1, progress=False)
    old = str(tmp_path / "old-model")
    train(str(tmp_path / "w-old"), old, dim=10, epochs=3, sample=0, threads=1, progress=False)
    topics, text = planted_topics(n_topics=6, n_sentences=1500, seed=6)
    # Topic 3 is gone from the new corpus: words t3* are not in the new vocabulary.
    text = "\n".join(line for line in text.splitlines() if "t3w" not in line) + "\n"
    new_text = tmp_path / "new.txt"
    new_text.write_text(text)
    count([str(new_text)], str(tmp_path / "w-new"), min_count=1, threads=1, progress=False)
    return old, str(tmp_path / "w-new")


def test_warm_start_keeps_the_vectors_of_known_words(old_and_grown, tmp_path):
    old, workdir = old_and_grown
    modeldir = str(tmp_path / "m")
    # A learning rate of ~0 shows the starting point itself.
    info = train(workdir, modeldir, init_from=old, dim=10, epochs=1, alpha=1e-12, min_alpha=0,
                 progress=False)
    warm = info["warm_start"]
    old_v, new_v = load(old), load(modeldir)
    known = [w for w in new_v.words if w in old_v]
    new_words = [w for w in new_v.words if w not in old_v]
    assert warm["known_words"] == len(known) and warm["new_words"] == len(new_words) > 0
    assert warm["output_vectors_copied"] is True
    for w in known:
        np.testing.assert_allclose(new_v[w], old_v[w], atol=1e-6)
    old_out = np.load(os.path.join(old, "output_vectors.npy"))
    new_out = np.load(os.path.join(modeldir, "output_vectors.npy"))
    for w in known[:5]:
        np.testing.assert_allclose(new_out[new_v.index(w)], old_out[old_v.index(w)], atol=1e-6)
    for w in new_words:
        assert np.abs(new_out[new_v.index(w)]).max() < 1e-6 and np.abs(new_v[w]).max() <= 0.5 / 10


def test_warm_start_then_training_learns_the_new_words(old_and_grown, tmp_path):
    old, workdir = old_and_grown
    modeldir = str(tmp_path / "m")
    train(workdir, modeldir, init_from=old, dim=10, epochs=3, sample=0, alpha=0.0125,
          threads=1, progress=False)
    vectors = load(modeldir)
    neighbours = [w for w, _ in vectors.most_similar("t5w0", topn=5)]
    assert sum(w.startswith("t5w") for w in neighbours) >= 4, neighbours


def test_warm_start_needs_the_same_dim_and_a_finished_model(old_and_grown, tmp_path):
    old, workdir = old_and_grown
    with pytest.raises(UsageError, match="dim"):
        train(workdir, str(tmp_path / "m"), init_from=old, dim=12, epochs=1, progress=False)
    with pytest.raises(MissingInputError, match="not a bigw2v model"):
        train(workdir, str(tmp_path / "m2"), init_from=str(tmp_path), dim=10, progress=False)


# ---------------------------------------------------------------- publish


def test_publish_switches_a_link_that_load_follows(old_and_grown, tmp_path):
    old, workdir = old_and_grown
    link = str(tmp_path / "latest")
    summary = publish(old, link)
    assert os.readlink(link) == os.path.realpath(old) == summary["model"]
    new = str(tmp_path / "new-model")
    info = train(workdir, new, init_from=link, dim=10, epochs=1, progress=False)
    # Warm-started from the model the link named when training began.
    assert info["init_from"] == os.path.realpath(old) and info["warm_start"]["known_words"] > 0
    assert load(new).words == read_vocab(workdir)[0] != load(old).words
    # Until the switch, readers of the link get the old model.
    assert load(link).words == load(old).words
    publish(new, link)
    assert os.readlink(link) == "new-model"
    through_link, direct = load(link), load(new)
    assert through_link.words == direct.words
    assert np.array_equal(np.asarray(through_link.vectors), np.asarray(direct.vectors))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_publish_refuses_unfinished_models_and_real_directories(old_and_grown, tmp_path):
    old, _ = old_and_grown
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "vectors.npy").write_bytes(b"")
    with pytest.raises(MissingInputError):
        publish(str(tmp_path / "half"), str(tmp_path / "latest"))
    assert not os.path.lexists(tmp_path / "latest")
    (tmp_path / "real").mkdir()
    with pytest.raises(UsageError, match="not a symbolic link"):
        publish(old, str(tmp_path / "real"))


def test_publish_from_the_command_line(old_and_grown, tmp_path):
    old, _ = old_and_grown
    r = subprocess.run([sys.executable, "-m", "bigw2v", "publish", old, tmp_path / "latest"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "published" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "bigw2v", "similar", tmp_path / "latest", "t0w0",
                        "-n", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    shown = [line.split() for line in r.stdout.splitlines()]
    expected = load(old).most_similar("t0w0", topn=2)
    assert shown == [[f"{s:.4f}", w] for w, s in expected]
    assert all(w.startswith("t0w") for w, _ in expected)


def test_runs_recorded_by_the_one_input_layout_are_reused(texts, tmp_path):
    """Workdirs of earlier versions (an input's record at the top of input.json) stay incremental."""
    import json
    workdir = str(tmp_path / "w")
    count(texts, workdir, **{**OPTIONS, "small_input_bytes": 0})
    for path in texts:
        record_path = os.path.join(workdir, RUNS_DIR, input_key(path), INPUT_RECORD)
        with open(record_path) as f:
            record = json.load(f)
        with open(record_path, "w") as f:
            json.dump({**record.pop("inputs")[0], **record}, f)
    extra = tmp_path / "extra.txt"
    extra.write_text("t0w1 t0w1 t0w2\n")
    manifest = count(texts + [str(extra)], workdir, **OPTIONS)
    assert manifest["last_run"]["reused_inputs"] == 3
    assert_same_as_fresh(workdir, texts + [str(extra)], tmp_path)


def test_runs_partitioned_by_another_hash_are_counted_again(texts, tmp_path):
    """Runs of versions that partitioned words by CRC-32 cannot merge with new ones."""
    import json
    workdir = str(tmp_path / "w")
    count(texts, workdir, **{**OPTIONS, "small_input_bytes": 0})
    record_path = os.path.join(workdir, RUNS_DIR, input_key(texts[0]), INPUT_RECORD)
    with open(record_path) as f:
        record = json.load(f)
    del record["partition_hash"]  # what earlier versions wrote
    with open(record_path, "w") as f:
        json.dump(record, f)
    extra = tmp_path / "extra.txt"
    extra.write_text("t0w1 t0w1 t0w2\n")
    manifest = count(texts + [str(extra)], workdir, **{**OPTIONS, "small_input_bytes": 0})
    assert manifest["last_run"]["reused_inputs"] == 2
    assert manifest["last_run"]["counted_inputs"] == 2
    assert_same_as_fresh(workdir, texts + [str(extra)], tmp_path)
