"""Tests for pass 1 (counter, runs, workdir): exact counting, spilling, merging, the vocabulary and the manifest."""

import bz2
import gzip
import io
import json
import lzma
import os
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigw2v import corpus, counter, runs, workdir
from bigw2v.wordtable import WordTable, word_partitions
from bigw2v.errors import InputDataError, MissingInputError, OutputError, UsageError

SEPARATORS = b" \t\r\n"


def reference_count(texts):
    """Counter of canonical words and number of non-empty lines, the slow way."""
    counts = Counter()
    sentences = 0
    for text in texts:
        for line in text.split(b"\n"):
            words = [w for w in line.replace(b"\t", b" ").replace(b"\r", b" ").split(b" ") if w]
            counts.update(corpus.canonical_word(w) for w in words)
            sentences += bool(words)
    return counts, sentences


def expected_vocab(counts, min_count):
    kept = [(w, n) for w, n in counts.items() if n >= min_count]
    kept.sort(key=lambda wn: (-wn[1], wn[0].encode("utf-8")))
    return [w for w, _ in kept], [n for _, n in kept]


def generated_corpus(seed=0, n_words=20000):
    """Zipf-ish words with odd bytes: tabs, CR, blank lines, UTF-8, invalid UTF-8, \\x0b."""
    rng = random.Random(seed)
    stems = [f"w{i}".encode() for i in range(300)] + ["é", "中文", "😀", "Ab"]
    stems = [s if isinstance(s, bytes) else s.encode() for s in stems] + [b"\xff", b"\xfe", "\ufffd".encode(),
                                                                        b"a\x0bb", b"q" * 1200]
    weights = [1.0 / (i + 1) for i in range(len(stems))]
    out = bytearray()
    for _ in range(n_words):
        out += rng.choices(stems, weights)[0]
        out += rng.choice([b" ", b" ", b" ", b"\t", b"\n", b"\r\n", b"  ", b"\n\n \n"])
    return bytes(out)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def count_quietly(inputs, workdir, **kwargs):
    kwargs.setdefault("threads", 1)
    kwargs.setdefault("min_count", 1)
    return counter.count(inputs, str(workdir), progress=False, **kwargs)


# ---------------------------------------------------------------- one block


def count_one(block):
    """(counts by canonical word, tokens, LineTally) of one block, counted by count_pieces."""
    table = WordTable()
    [(tokens, tally)] = counter.count_pieces([block], table)
    words, counts, _ = table.word_counts()
    return dict(zip(words.to_pylist(), counts.tolist())), tokens, tally


def test_count_pieces_counts_words_tokens_and_lines():
    counts, tokens, tally = count_one(b"a b\ta\r\n\n c \n  \nd")
    assert counts == {"a": 2, "b": 1, "c": 1, "d": 1}
    assert tokens == 5
    assert tally == counter.LineTally(first=True, middle=1, last=True, newline=True)
    assert count_one(b"x y ")[2] == counter.LineTally(True, 0, False, False)
    assert count_one(b"  \n")[2] == counter.LineTally(False, 0, False, True)
    assert count_one(b"")[1:] == (0, counter.LineTally(False, 0, False, False))
    assert count_one(b"\x0b\n")[2].first  # \x0b is a word


def test_count_pieces_keeps_each_piece_tally():
    table = WordTable()
    tallies = counter.count_pieces([b"a b\n", b"c", b"a\n\nd e\n", b" \n"], table)
    words, counts, _ = table.word_counts()
    assert dict(zip(words.to_pylist(), counts.tolist())) == {"a": 2, "b": 1, "c": 1, "d": 1, "e": 1}
    assert tallies == [(2, counter.LineTally(True, 0, False, True)),
                       (1, counter.LineTally(True, 0, False, False)),
                       (3, counter.LineTally(True, 1, False, True)),
                       (0, counter.LineTally(False, 0, False, True))]


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 8, 13, 1000])
def test_sentences_are_exact_across_block_boundaries(block_bytes):
    text = b"a b\n\n  c\n \t\nd e f g\r\n   h" + b"\n" * 3 + b" i  j  k "
    open_line, sentences, tokens = False, 0, 0
    for block in corpus.iter_blocks(io.BytesIO(text), block_bytes):
        _, n, tally = count_one(block)
        done, open_line = counter.add_lines(open_line, tally)
        sentences += done
        tokens += n
    sentences += open_line
    assert (sentences, tokens) == (5, 11)


# ---------------------------------------------------------------- tables


def test_table_partitions_canonicalise_and_cover_every_word():
    table = WordTable()
    words = [f"word{i}" for i in range(1000)] + ["é", "😀"]
    table.count_block(" ".join(words).encode() + b" \xff \xfe " + "\ufffd".encode())
    pieces = list(runs.table_partitions(table, 16))
    assert len(pieces) == 16  # 1003 words over 16 partitions: none empty
    got = {}
    for p, piece in pieces:
        assert piece.schema == workdir.VOCAB_SCHEMA
        assert set(word_partitions(piece.column("word").to_pylist(), 16).tolist()) == {p}
        got.update(zip(piece.column("word").to_pylist(), piece.column("count").to_pylist()))
    assert got == {**{w: 1 for w in words}, "\ufffd": 3}


# ---------------------------------------------------------------- count()


def test_count_matches_reference(tmp_path):
    text = generated_corpus()
    path = write(tmp_path / "c.txt", text)
    manifest = count_quietly([path], tmp_path / "wd", min_count=3)
    ref, sentences = reference_count([text])
    words, counts = workdir.read_vocab(str(tmp_path / "wd"))
    assert (words, counts.tolist()) == expected_vocab(ref, 3)
    assert counts.dtype == np.int64
    totals = manifest["totals"]
    assert totals["tokens"] == sum(ref.values())
    assert totals["sentences"] == sentences
    assert totals["distinct_words"] == len(ref)
    assert totals["vocab_words"] == len(words)
    assert totals["vocab_tokens"] == int(counts.sum())
    assert "q" * 1000 in words and "\ufffd" in words and "a\x0bb" in words


def test_spilling_and_small_blocks_give_the_same_vocabulary(tmp_path):
    text = generated_corpus(seed=1, n_words=5000)
    path = write(tmp_path / "c.txt", text)
    count_quietly([path], tmp_path / "one", min_count=2)
    manifest = count_quietly([path], tmp_path / "many", min_count=2, spill_words=10, block_bytes=97,
                             partitions=7)
    runs = os.listdir(tmp_path / "many" / "runs")
    assert len(runs) == 1 and len(os.listdir(tmp_path / "many" / "runs" / runs[0])) > 10
    assert (tmp_path / "one" / "vocab.parquet").read_bytes() != b""
    a = pq.read_table(tmp_path / "one" / "vocab.parquet")
    b = pq.read_table(tmp_path / "many" / "vocab.parquet")
    assert a.equals(b)
    assert manifest["settings"] == {"min_count": 2, "max_word_bytes": 1000, "partitions": 7,
                                    "text_column": None, "text_field": None, "normalize": None}
    shards = sorted(os.listdir(tmp_path / "many" / "shards"))
    assert 0 < len(shards) <= 7
    shard_rows = sum(pq.read_table(tmp_path / "many" / "shards" / s).num_rows for s in shards)
    assert shard_rows == manifest["totals"]["distinct_words"]


@pytest.mark.parametrize("max_rows", [0, 40, 10**9])
def test_merge_from_kept_run_tables_equals_merge_from_disk(tmp_path, max_rows):
    text = generated_corpus(seed=5, n_words=6000)
    [inp] = corpus.expand_inputs([write(tmp_path / "c.txt", text)])
    workdir = tmp_path / "wd"
    runs_root = str(workdir / "runs")
    written = runs.WrittenRuns(max_rows)
    # Two runs for some partitions (summed), one for others (taken as they are).
    counter.count_group([inp], runs_root, partitions=5, spill_words=150, block_bytes=3000,
                      written=written)
    assert written.rows <= max_rows
    kept = runs.merge_runs(str(workdir), 5, 2, written)
    from_disk = runs.merge_runs(str(workdir), 5, 2)
    assert kept[1:] == from_disk[1:]
    assert runs.sort_vocab(kept[0]).equals(runs.sort_vocab(from_disk[0]))


def test_written_runs_serve_kept_tables_and_read_the_rest(tmp_path):
    table = pa.table({"word": ["a", "b"], "count": [3, 1]}, schema=workdir.VOCAB_SCHEMA)
    written = runs.WrittenRuns(max_rows=2)
    written.add(str(tmp_path / "gone.parquet"), table)
    on_disk = tmp_path / "kept-out.parquet"
    pq.write_table(table, on_disk)
    written.add(str(on_disk), table)  # over the budget: not kept
    assert written.rows == 2
    assert written.read(str(tmp_path / "gone.parquet")).equals(table)  # never read from disk
    assert written.read(str(on_disk)).equals(table)


def test_two_counting_threads_with_many_spills_give_the_same_vocabulary(tmp_path):
    text = generated_corpus(seed=2, n_words=8000)
    path = write(tmp_path / "c.txt", text)
    serial = count_quietly([path], tmp_path / "serial")
    pooled = count_quietly([path], tmp_path / "pooled", threads=2, block_bytes=500, spill_words=50)
    assert pq.read_table(tmp_path / "serial" / "vocab.parquet").equals(
        pq.read_table(tmp_path / "pooled" / "vocab.parquet"))
    assert serial["totals"] == pooled["totals"]
    assert serial["inputs"] == pooled["inputs"]


def test_compressed_inputs_count_like_plain(tmp_path):
    text = generated_corpus(seed=3, n_words=3000)
    plain = write(tmp_path / "plain" / "c.txt", text)
    count_quietly([plain], tmp_path / "wd-plain")
    expected = pq.read_table(tmp_path / "wd-plain" / "vocab.parquet")
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(text)
    for kind, data in [("gz", gzip.compress(text)), ("bz2", bz2.compress(text)), ("xz", lzma.compress(text)),
                       ("zst", sink.getvalue().to_pybytes())]:
        path = write(tmp_path / kind / f"c.txt.{kind}", data)
        count_quietly([path], tmp_path / f"wd-{kind}", block_bytes=1000)
        assert pq.read_table(tmp_path / f"wd-{kind}" / "vocab.parquet").equals(expected), kind


def test_several_inputs_and_directories(tmp_path):
    texts = {"d/a.txt": b"x y\nz", "d/sub/b.txt": b"x\n\nx y", "d/.hidden": b"never counted", "e.txt": b"y"}
    for rel, data in texts.items():
        write(tmp_path / rel, data)
    manifest = count_quietly([str(tmp_path / "d"), str(tmp_path / "e.txt")], tmp_path / "wd")
    paths = [os.path.relpath(r["path"], tmp_path) for r in manifest["inputs"]]
    assert paths == ["d/a.txt", "d/sub/b.txt", "e.txt"]
    assert [(r["tokens"], r["sentences"]) for r in manifest["inputs"]] == [(3, 2), (3, 2), (1, 1)]
    assert workdir.read_vocab(str(tmp_path / "wd"))[0] == ["x", "y", "z"]
    st = os.stat(tmp_path / "e.txt")
    assert manifest["inputs"][2]["size"] == st.st_size and manifest["inputs"][2]["mtime_ns"] == st.st_mtime_ns


def test_vocabulary_sorted_by_count_then_utf8_bytes(tmp_path):
    text = "b a é z 😀 \uffff b a é z 😀 \uffff c c c d".encode()
    path = write(tmp_path / "c.txt", text)
    count_quietly(path, tmp_path / "wd")
    words, counts = workdir.read_vocab(str(tmp_path / "wd"))
    assert words == ["c", "a", "b", "z", "é", "\uffff", "😀", "d"]
    assert counts.tolist() == [3, 2, 2, 2, 2, 2, 2, 1]


def test_min_count_filters(tmp_path):
    path = write(tmp_path / "c.txt", b"a a a b b c")
    manifest = count_quietly([path], tmp_path / "wd", min_count=2)
    assert workdir.read_vocab(str(tmp_path / "wd"))[0] == ["a", "b"]
    assert manifest["totals"] == {"tokens": 6, "sentences": 1, "distinct_words": 3, "vocab_words": 2,
                                  "vocab_tokens": 5}


def test_manifest_is_written_last_and_read_back(tmp_path):
    path = write(tmp_path / "c.txt", b"a b\n")
    manifest = count_quietly([path], tmp_path / "wd")
    on_disk = json.loads((tmp_path / "wd" / "count.json").read_text())
    assert on_disk == manifest == workdir.read_manifest(str(tmp_path / "wd"))
    assert manifest["format"] == "bigw2v-count" and manifest["version"] == 1
    assert set(manifest) == {"format", "version", "inputs", "totals", "settings", "created", "seconds",
                             "last_run"}
    assert manifest["inputs"] == [{"path": path, "size": 4, "mtime_ns": os.stat(path).st_mtime_ns,
                                   "tokens": 2, "sentences": 1}]
    assert manifest["seconds"] >= 0
    assert not [n for n in os.listdir(tmp_path / "wd") if n.endswith(".tmp")]


def test_write_and_read_vocab_file(tmp_path):
    path = str(tmp_path / "v.parquet")
    workdir.write_vocab(path, ["x", "é"], np.array([5, 2]))
    words, counts = workdir.read_vocab(path)
    assert words == ["x", "é"] and counts.tolist() == [5, 2] and counts.dtype == np.int64


# ---------------------------------------------------------------- errors


def test_missing_input(tmp_path):
    with pytest.raises(MissingInputError, match="no such file or directory"):
        count_quietly([str(tmp_path / "absent.txt")], tmp_path / "wd")


@pytest.mark.parametrize("data", [b"", b" \t\r\n \n\n"])
def test_corpus_without_words(tmp_path, data):
    path = write(tmp_path / "c.txt", data)
    with pytest.raises(InputDataError, match="contains no words"):
        count_quietly([path], tmp_path / "wd")
    assert not (tmp_path / "wd" / "count.json").exists()


def test_empty_vocabulary_after_min_count_leaves_no_valid_workdir(tmp_path):
    path = write(tmp_path / "c.txt", b"a b c a")
    count_quietly([path], tmp_path / "wd")  # a valid count first: it must not survive
    with pytest.raises(InputDataError, match="--min-count"):
        count_quietly([path], tmp_path / "wd", min_count=3)
    assert not (tmp_path / "wd" / "count.json").exists()
    assert not (tmp_path / "wd" / "vocab.parquet").exists()
    with pytest.raises(MissingInputError, match="not a counted workdir"):
        workdir.read_vocab(str(tmp_path / "wd"))


@pytest.mark.parametrize("settings", [{"min_count": 0}, {"threads": 0}, {"spill_words": 0},
                                      {"partitions": 0}, {"min_count": 2.5},
                                      {"small_input_bytes": -1}])
def test_bad_settings_are_usage_errors(tmp_path, settings):
    path = write(tmp_path / "c.txt", b"a")
    with pytest.raises(UsageError):
        count_quietly([path], tmp_path / "wd", **settings)


def test_workdir_that_cannot_be_created(tmp_path):
    path = write(tmp_path / "c.txt", b"a")
    blocker = write(tmp_path / "file", b"")
    with pytest.raises(OutputError, match="file"):
        count_quietly([path], os.path.join(blocker, "wd"))


def test_read_manifest_errors(tmp_path):
    with pytest.raises(MissingInputError, match="not a counted workdir: run `bigw2v count` first"):
        workdir.read_manifest(str(tmp_path))
    (tmp_path / "count.json").write_text("{not json")
    with pytest.raises(InputDataError):
        workdir.read_manifest(str(tmp_path))
    (tmp_path / "count.json").write_text('{"format": "something-else"}')
    with pytest.raises(InputDataError):
        workdir.read_manifest(str(tmp_path))


def test_read_vocab_errors(tmp_path):
    with pytest.raises(MissingInputError):
        workdir.read_vocab(str(tmp_path / "absent.parquet"))
    bad = write(tmp_path / "bad.parquet", b"not parquet at all")
    with pytest.raises(InputDataError):
        workdir.read_vocab(bad)
    pq.write_table(pa.table({"x": [1]}), str(tmp_path / "other.parquet"))
    with pytest.raises(InputDataError, match="word"):
        workdir.read_vocab(str(tmp_path / "other.parquet"))


def test_corrupt_input_is_input_data_error(tmp_path):
    data = gzip.compress(generated_corpus(n_words=5000))
    path = write(tmp_path / "c.txt.gz", data[: len(data) // 2])
    with pytest.raises(InputDataError, match="c.txt.gz"):
        count_quietly([path], tmp_path / "wd")
    assert not (tmp_path / "wd" / "count.json").exists()


def test_plan_groups_batches_small_files_in_order(tmp_path):
    def inp(name, size):
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        return corpus.InputFile(str(path), size, 0, None)

    a, b, big, c, d, e = (inp("a", 10), inp("b", 20), inp("big", 100), inp("c", 30), inp("d", 40),
                          inp("e", 5))
    stdin = corpus.InputFile("-", 0, 0, None)
    groups = counter.plan_groups([a, b, big, stdin, c, d, e], small_input_bytes=50, group_bytes=70,
                               group_files=2)
    assert [[i.path for i in g] for g in groups] == [
        [big.path], ["-"], [a.path, b.path], [c.path, d.path], [e.path]]
    assert counter.plan_groups([a, b], small_input_bytes=0) == [[a], [b]]
    assert runs.group_key([a.path]) == runs.input_key(a.path)
    assert runs.group_key([a.path, b.path]).startswith("group-")
