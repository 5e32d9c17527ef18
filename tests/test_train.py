import json
import os

import numpy as np
import pytest

from bigw2v import load
from bigw2v.errors import InputDataError, OutputError, UsageError
from bigw2v.trainer import chunk_plan, train


def topic_of(word):
    return word.split("w")[0] if word.startswith("t") else None


@pytest.mark.parametrize("model,hs,negative", [("sg", False, 5), ("cbow", False, 5),
                                               ("sg", True, 0), ("cbow", True, 0)])
def test_planted_topics_are_learned(planted_workdir, tmp_path, model, hs, negative):
    workdir, topics, _ = planted_workdir
    modeldir = str(tmp_path / "m")
    info = train(workdir, modeldir, model=model, hs=hs, negative=negative, dim=24, window=4,
                 epochs=8, sample=0, threads=2, progress=False)
    assert info["complete"] and info["figures"]["epoch_losses"][-1] < info["figures"]["epoch_losses"][0]
    vectors = load(modeldir)
    hits = total = 0
    for topic in topics:
        for word in topic:
            neighbours = [w for w, _ in vectors.most_similar(word, topn=5)]
            hits += sum(topic_of(w) == topic_of(word) for w in neighbours)
            total += 5
    assert hits / total > 0.9, f"only {hits}/{total} neighbours share the topic"


def test_one_thread_and_a_seed_give_bit_identical_vectors(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(workdir, str(tmp_path / name), dim=16, epochs=2, threads=1, seed=seed,
              progress=False)
        runs.append(np.load(tmp_path / name / "vectors.npy"))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_model_directory_holds_vectors_vocab_and_settings(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    modeldir = tmp_path / "m"
    train(workdir, str(modeldir), model="cbow", dim=10, epochs=1, hs=True, progress=False)
    info = json.loads((modeldir / "model.json").read_text())
    assert info["settings"]["alpha"] == 0.05 and info["settings"]["cbow_mean"] is True
    assert info["settings"]["min_count"] == 1 and info["complete"] is True
    v = info["vocab_size"]
    vectors = np.load(modeldir / "vectors.npy", mmap_mode="r")
    assert isinstance(vectors, np.memmap) and vectors.shape == (v, 10)
    assert np.load(modeldir / "output_vectors.npy").shape == (v, 10)
    assert np.load(modeldir / "hs_vectors.npy").shape == (v - 1, 10)
    assert info["figures"]["corpus_tokens"] == 4000 * 12


def test_retraining_reuses_the_encoded_corpus(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    train(workdir, str(tmp_path / "a"), dim=8, epochs=1, progress=False)
    info = train(workdir, str(tmp_path / "b"), dim=8, epochs=1, progress=False)
    assert info["figures"]["encoding_reused"] is True


def test_max_vocab_and_min_count_shrink_the_vocabulary(planted_workdir, tmp_path):
    workdir = planted_workdir[0]
    info = train(workdir, str(tmp_path / "a"), dim=8, epochs=1, max_vocab=10, progress=False)
    assert info["vocab_size"] == 10
    vectors = load(str(tmp_path / "a"))
    assert np.all(np.diff(vectors.counts) <= 0)  # the 10 most frequent, in order
    assert info["figures"]["corpus_tokens"] == int(vectors.counts.sum())


@pytest.mark.parametrize("overrides,message", [
    ({"model": "glove"}, "--model"), ({"dim": 0}, "--dim"), ({"window": 0}, "--window"),
    ({"negative": 0, "hs": False}, "--negative"), ({"sample": 1.5}, "--sample"),
    ({"epochs": 0}, "--epochs"), ({"alpha": -1.0}, "--alpha"), ({"threads": 0}, "--threads"),
])
def test_bad_settings_are_usage_errors(planted_workdir, tmp_path, overrides, message):
    with pytest.raises(UsageError, match=message):
        train(planted_workdir[0], str(tmp_path / "m"), progress=False, **overrides)
    assert not (tmp_path / "m" / "model.json").exists()


def test_min_count_below_the_counted_one_is_refused(tmp_path):
    from bigw2v.counter import count
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c " * 10)
    count([str(corpus)], str(tmp_path / "w"), min_count=5, threads=1, progress=False)
    with pytest.raises(UsageError, match="count again"):
        train(str(tmp_path / "w"), str(tmp_path / "m"), min_count=2, progress=False)
    with pytest.raises(InputDataError, match="min-count"):
        train(str(tmp_path / "w"), str(tmp_path / "m"), min_count=100, progress=False)


def test_a_directory_with_other_files_is_not_clobbered(planted_workdir, tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("do not delete")
    with pytest.raises(OutputError, match="not a bigw2v model"):
        train(planted_workdir[0], str(target), dim=8, epochs=1, progress=False)
    assert (target / "thesis.tex").read_text() == "do not delete"


def test_chunk_plan_covers_every_sentence_once():
    starts = np.array([0, 5, 7, 30, 31, 60, 100], dtype=np.int64)
    plan = chunk_plan(starts, 20)
    assert plan[0] == 0 and plan[-1] == 6 and np.all(np.diff(plan) > 0)
