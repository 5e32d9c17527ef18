"""Odd input end to end, count then train: a huge line, huge words, invalid UTF-8,
CRLF line ends, and thousands of small files."""

import os
from collections import Counter

import numpy as np
import pytest

from bigw2v import load
from bigw2v.corpus import MAX_SENTENCE_WORDS, MAX_WORD_BYTES
from bigw2v.encode import EncodedCorpus
from bigw2v.trainer import train
from bigw2v.counter import count
from bigw2v.workdir import RUNS_DIR, read_vocab

TRAIN = dict(dim=8, epochs=1, threads=1, progress=False)


def count_and_train(inputs, tmp_path, name="w", **count_options):
    workdir = str(tmp_path / name)
    count_options = {"min_count": 1, "threads": 1, "progress": False, **count_options}
    manifest = count([str(p) for p in inputs], workdir, **count_options)
    info = train(workdir, str(tmp_path / (name + "-model")), **TRAIN)
    return workdir, manifest, info


def encoded(workdir):
    directory = os.path.join(workdir, "encoded")
    (key,) = os.listdir(directory)
    return EncodedCorpus(os.path.join(directory, key))


def test_a_line_of_megabytes_is_one_sentence_cut_every_10000_words(tmp_path):
    words = [b"w%d" % (i % 997) for i in range(700_000)]  # ~4.6 MB, no newline but the last
    path = tmp_path / "line.txt"
    path.write_bytes(b" ".join(words) + b"\n")
    workdir, manifest, info = count_and_train([path], tmp_path, block_bytes=1 << 16)
    assert manifest["totals"]["tokens"] == len(words) and manifest["totals"]["sentences"] == 1
    starts = encoded(workdir).sentence_starts
    assert np.diff(starts).max() == MAX_SENTENCE_WORDS
    assert starts.shape[0] - 1 == -(-len(words) // MAX_SENTENCE_WORDS)
    assert info["figures"]["corpus_tokens"] == len(words)


def test_words_of_thousands_of_bytes_are_truncated_and_trained(tmp_path):
    long_e = "é" * 2500                # 5000 bytes: cut to 500 characters (1000 bytes)
    long_a = "a" * 1001                # 1001 bytes: the same word as "a" * 1000
    text = " ".join([long_e, long_a, "a" * 1000, "short"] * 5) + "\n"
    path = tmp_path / "long.txt"
    path.write_text(text)
    workdir, manifest, _ = count_and_train([path], tmp_path, block_bytes=1500)
    words, counts = read_vocab(workdir)
    assert dict(zip(words, counts.tolist())) == {"a" * MAX_WORD_BYTES: 10, "é" * 500: 5, "short": 5}
    vectors = load(str(tmp_path / "w-model"))
    assert vectors["é" * 500].shape == (8,)
    assert encoded(workdir).n_tokens == 20


def test_invalid_utf8_is_one_replacement_word_and_trains(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9 na\xefve caf\xe9 ok\n\xff\xfe ok caf\xe9\n")
    workdir, manifest, _ = count_and_train([path], tmp_path)
    words, counts = read_vocab(workdir)
    assert dict(zip(words, counts.tolist())) == {"caf\ufffd": 3, "ok": 2, "na\ufffdve": 1,
                                                 "\ufffd\ufffd": 1}
    assert "caf\ufffd" in load(str(tmp_path / "w-model"))
    assert encoded(workdir).n_tokens == manifest["totals"]["tokens"] == 7


def test_crlf_files_count_and_encode_like_lf_files(tmp_path):
    lines = ["the cat sat", "", "on the mat", "the end"] * 200
    lf = tmp_path / "lf" / "c.txt"
    crlf = tmp_path / "crlf" / "c.txt"
    for path, end in ((lf, "\n"), (crlf, "\r\n")):
        path.parent.mkdir()
        path.write_bytes(end.join(lines).encode() + end.encode())
    a, manifest_a, _ = count_and_train([lf], tmp_path, "a", block_bytes=100)
    b, manifest_b, _ = count_and_train([crlf], tmp_path, "b", block_bytes=100)
    assert manifest_a["totals"] == manifest_b["totals"]
    assert manifest_b["totals"]["sentences"] == 600
    assert read_vocab(a)[0] == read_vocab(b)[0]
    ea, eb = encoded(a), encoded(b)
    assert np.array_equal(ea.tokens, eb.tokens)
    assert np.array_equal(ea.sentence_starts, eb.sentence_starts)


def test_two_thousand_small_files_share_one_run_and_stay_incremental(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "many"
    expected = {}
    for i in range(2000):
        # Some files end without a newline: their last line is a sentence of its own.
        lines = [" ".join(f"w{k}" for k in rng.zipf(1.5, rng.integers(1, 9)) % 300)
                 for _ in range(rng.integers(1, 6))]
        text = "\n".join(lines) + ("\n" if i % 3 else "")
        path = root / f"d{i // 500}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        expected[str(path)] = (sum(len(line.split()) for line in lines), len(lines))
    workdir, manifest, info = count_and_train([root], tmp_path, threads=2)
    assert {r["path"]: (r["tokens"], r["sentences"]) for r in manifest["inputs"]} == expected
    runs = [name for _, _, names in os.walk(os.path.join(workdir, RUNS_DIR)) for name in names]
    assert len(runs) <= 17  # one group: at most one file per partition, and its record
    assert info["figures"]["sentences"] == sum(s for _, s in expected.values())

    # A changed file, a new one, a removed one: the result equals a fresh count.
    changed = root / "d1" / "f0600.txt"
    changed.write_text(changed.read_text() + " extra words\n")
    (root / "d3" / "new.txt").write_text("brand new words\n")
    os.remove(root / "d0" / "f0007.txt")
    again = count([str(root)], workdir, min_count=1, threads=1, progress=False)
    fresh = count([str(root)], str(tmp_path / "fresh"), min_count=1, threads=1, progress=False)
    assert again["inputs"] == fresh["inputs"] and again["totals"] == fresh["totals"]
    assert again["last_run"]["dropped_inputs"] == 1
    assert read_vocab(workdir)[0] == read_vocab(str(tmp_path / "fresh"))[0]
    words, counts = read_vocab(workdir)
    assert Counter(dict(zip(words, counts.tolist())))["extra"] == 1
