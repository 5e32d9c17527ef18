"""The units an engine calls with explicit state, each against the whole command.

Counting a group into runs, merging one partition, encoding a slice of the
corpus and training a range of chunks must give, pieced together by a caller
that is not the CLI, exactly what ``count`` and ``train`` give.
"""

import os

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigw2v import corpus, counter, encode, runs, trainer, workdir
from bigw2v.modeldir import weight_files
from bigw2v.settings import TrainSettings
from conftest import planted_topics

PARTITIONS = 4


def write_corpus(tmp_path, parts=3, seed=0):
    """Planted-topic text cut into ``parts`` files; their paths."""
    text = planted_topics(n_sentences=600, seed=seed)[1]
    lines = text.splitlines(keepends=True)
    paths = []
    for i in range(parts):
        path = tmp_path / f"part{i}.txt"
        path.write_text("".join(lines[i::parts]))
        paths.append(str(path))
    return paths


def test_groups_counted_apart_and_partitions_merged_one_by_one_equal_count(tmp_path):
    paths = write_corpus(tmp_path)
    inputs = corpus.expand_inputs(paths)
    # As an engine would: each group in its own call (its own tables), into one runs/ tree.
    engine = tmp_path / "engine"
    runs_root = str(engine / workdir.RUNS_DIR)
    records = [counter.count_group([inp], runs_root, partitions=PARTITIONS, spill_words=40,
                                   block_bytes=2000)
               for inp in inputs[:2]]
    records.append(counter.count_input(inputs[2], runs_root, partitions=PARTITIONS))
    all_runs = runs.run_dirs(runs_root)
    assert len(all_runs) > len(inputs)  # spill_words=40 and small blocks made several runs
    os.makedirs(engine / workdir.SHARDS_DIR)
    merged = [runs.merge_partition(runs.partition_files(all_runs, p),
                                   str(engine / workdir.SHARDS_DIR / workdir.part_name(p)), 2)
              for p in range(PARTITIONS)]
    vocab = runs.sort_vocab(pa.concat_tables([m.kept for m in merged]))

    manifest = counter.count(paths, str(tmp_path / "whole"), min_count=2, threads=2,
                             partitions=PARTITIONS, progress=False)
    assert vocab.equals(pq.read_table(tmp_path / "whole" / workdir.VOCAB_NAME))
    assert sum(m.distinct for m in merged) == manifest["totals"]["distinct_words"]
    assert sum(m.tokens for m in merged) == manifest["totals"]["tokens"]
    flat = [r for group in records[:2] for r in group] + [records[2]]
    assert flat == manifest["inputs"]
    for p in range(PARTITIONS):  # the shards too, row for row
        name = workdir.part_name(p)
        ours = runs.sort_vocab(pq.read_table(engine / workdir.SHARDS_DIR / name))
        theirs = runs.sort_vocab(pq.read_table(tmp_path / "whole" / workdir.SHARDS_DIR / name))
        assert ours.equals(theirs)


def test_slices_encoded_apart_join_into_the_whole_encoding(tmp_path):
    paths = write_corpus(tmp_path)
    wd = str(tmp_path / "wd")
    manifest = counter.count(paths, wd, min_count=3, threads=1, progress=False)
    words, counts = workdir.read_vocab(wd)
    whole, reused = encode.encode(wd, manifest, words, int(counts.sum()), threads=2,
                                  progress=False)
    assert not reused
    index = {w: i for i, w in enumerate(words)}
    tokens, starts = [], [0]
    for i, path in enumerate(paths):
        # Each slice needs its own token total: here from the text itself.
        n = sum(w in index for w in open(path).read().split())
        part = encode.encode_slice(corpus.expand_inputs([path]), words,
                                   str(tmp_path / f"slice{i}"), n, threads=2, progress=False)
        assert part.n_tokens == n
        tokens.append(np.asarray(part.tokens))
        starts.extend(part.sentence_starts[1:] + starts[-1])
    assert np.array_equal(np.concatenate(tokens), whole.tokens)
    assert np.array_equal(np.array(starts), whole.sentence_starts)


def test_training_ranges_of_chunks_from_outside_gives_the_trained_model(planted_workdir, tmp_path):
    wd = planted_workdir[0]
    settings = dict(dim=10, epochs=2, threads=1, chunk_words=3000, seed=3)
    info = trainer.train(wd, str(tmp_path / "model"), progress=False, **settings)

    s = TrainSettings(**settings).resolved()
    words, counts = workdir.read_vocab(wd)
    manifest = workdir.read_manifest(wd)
    corpus_, _ = encode.encode(wd, manifest, words, int(counts.sum()), progress=False)
    chunk_starts = trainer.chunk_plan(corpus_.sentence_starts, s.chunk_words)
    weights = {"vectors.npy": trainer.init_input_vectors(str(tmp_path / "v.npy"), len(words),
                                                         s.dim, s.seed),
               "output_vectors.npy": np.zeros((len(words), s.dim), np.float32)}
    assert sorted(weights) == sorted(weight_files(s))
    job = trainer.prepare_job(corpus_.tokens, corpus_.sentence_starts, chunk_starts, counts, s,
                              weights)
    assert job.n_chunks == info["figures"]["chunks"] > 3
    numba.set_num_threads(1)
    trained = 0
    for epoch in range(s.epochs):
        # Uneven ranges, as an engine handing out work might: the result may not depend on it.
        cuts = [0, 1, 3, job.n_chunks]
        for first, stop in zip(cuts, cuts[1:]):
            trained += trainer.train_range(job, epoch, first, stop).trained
    assert trained == info["figures"]["trained_words"]
    for name, matrix in weights.items():
        assert np.array_equal(np.asarray(matrix), np.load(tmp_path / "model" / name)), name
