import os

import numpy as np
import pytest

from bigw2v import encode as enc
from bigw2v.errors import InputDataError
from bigw2v.wordtable import WordTable
from bigw2v.counter import count
from bigw2v.workdir import read_manifest, read_vocab


def test_encode_block_drops_unknown_words_and_marks_line_ends():
    table = WordTable.from_words(["a", "b", "café"])
    block = b"a x b\n\nb a\t" + "café".encode() + b" zz\n" + b"a"
    tokens, line_ends = enc.encode_block(block, table)
    assert tokens.tolist() == [0, 1, 1, 0, 2, 0]
    assert line_ends.tolist() == [2, 2, 5]


def test_invalid_utf8_and_long_words_find_their_canonical_entry():
    from bigw2v.corpus import MAX_WORD_BYTES, canonical_word
    bad = b"caf\xe9"
    long = b"x" * (MAX_WORD_BYTES + 50)
    table = WordTable.from_words([canonical_word(bad), canonical_word(long)])
    tokens, lines = enc.encode_block(b"\xff\n" + bad + b" " + long + b" other\n\xfe\n", table)
    assert tokens.tolist() == [0, 1]
    assert lines.tolist() == [0, 2, 2]  # the unknown \xff and \xfe leave no id behind


def test_sentence_starts_cut_long_sentences_and_skip_empty_ones():
    starts = enc.sentence_starts_from_breaks(np.array([3, 3, 10, 10]), 25, max_words=4)
    assert starts.tolist() == [0, 3, 7, 10, 14, 18, 22, 25]
    assert enc.sentence_starts_from_breaks(np.array([], np.int64), 0, 4).tolist() == [0]


@pytest.mark.parametrize("seed", range(5))
def test_sentence_starts_written_block_by_block_equal_the_whole_array_form(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n_tokens = int(rng.integers(0, 400))
    breaks = np.sort(rng.integers(0, n_tokens + 1, size=int(rng.integers(0, 60))))
    writer = enc.SentenceStartsWriter(str(tmp_path / "s.npy"), max_words=7)
    writer.COPY_ROWS = 5  # several copy rounds at the end
    cuts = np.sort(rng.integers(0, breaks.shape[0] + 1, size=4))
    for piece in np.split(breaks, cuts):
        writer.add_breaks(piece)
    sentences = writer.finish(n_tokens)
    got = np.load(tmp_path / "s.npy")
    expected = enc.sentence_starts_from_breaks(breaks, n_tokens, 7)
    assert got.tolist() == expected.tolist() and sentences == expected.shape[0] - 1
    assert os.listdir(tmp_path) == ["s.npy"]


def make_workdir(tmp_path, text, min_count=1):
    path = tmp_path / "c.txt"
    path.write_text(text)
    workdir = str(tmp_path / "w")
    count([str(path)], workdir, min_count=min_count, threads=1, progress=False)
    words, counts = read_vocab(workdir)
    return path, workdir, words, counts


@pytest.mark.parametrize("threads", [1, 2])
def test_encode_writes_the_corpus_as_vocabulary_rows(tmp_path, threads):
    text = "the cat sat\non the mat\n\nthe end rare\n" * 50 + "the cat"
    path, workdir, words, counts = make_workdir(tmp_path, text, min_count=2)
    keep = [w for w in words]  # rare (50 times) is kept; min_count 2
    n = int(counts.sum())
    corpus, reused = enc.encode(workdir, read_manifest(workdir), keep, n, threads=threads,
                                progress=False, block_bytes=64)
    assert not reused
    row = {w: i for i, w in enumerate(keep)}
    expected = [row[w] for w in text.split()]
    assert corpus.tokens.tolist() == expected
    # One sentence per non-empty line.
    lines = [line.split() for line in text.split("\n") if line.split()]
    assert np.diff(corpus.sentence_starts).tolist() == [len(line) for line in lines]
    again, reused = enc.encode(workdir, read_manifest(workdir), keep, n, progress=False)
    assert reused and again.directory == corpus.directory


def test_encode_refuses_a_corpus_changed_since_counting(tmp_path):
    path, workdir, words, counts = make_workdir(tmp_path, "a b c a b a\n")
    with open(path, "a") as f:
        f.write("a a a\n")
    with pytest.raises(InputDataError, match="changed since it was counted"):
        enc.encode(workdir, read_manifest(workdir), words, int(counts.sum()), progress=False)
    os.remove(path)
    with pytest.raises(InputDataError, match="gone"):
        enc.encode(workdir, read_manifest(workdir), words, int(counts.sum()), progress=False)


def test_released_token_pages_read_back_unchanged(tmp_path):
    text = " ".join(f"w{i % 97}" for i in range(200_000)) + "\n"
    path, workdir, words, counts = make_workdir(tmp_path, text)
    corpus, _ = enc.encode(workdir, read_manifest(workdir), words, int(counts.sum()),
                           progress=False)
    before = np.array(corpus.tokens)
    corpus.release(150_000)
    corpus.release(160_000)
    corpus.release(10)  # a new epoch starts over
    corpus.release(120_000)
    assert np.array_equal(np.asarray(corpus.tokens), before)


def test_pages_dropped_while_encoding_keep_every_token(tmp_path, monkeypatch):
    monkeypatch.setattr(enc, "RELEASE_EVERY", 1000)  # drop pages many times in a small corpus
    text = "\n".join(" ".join(f"w{(i * 7 + j) % 131}" for j in range(50)) for i in range(2000))
    path, workdir, words, counts = make_workdir(tmp_path, text)
    corpus, _ = enc.encode(workdir, read_manifest(workdir), words, int(counts.sum()),
                           progress=False, block_bytes=4096)
    row = {w: i for i, w in enumerate(words)}
    assert np.asarray(corpus.tokens).tolist() == [row[w] for w in text.split()]
