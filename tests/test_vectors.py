"""Tests for bigw2v.vectors: queries, model directories, word2vec formats."""

import json
import os

import numpy as np
import pytest

from bigw2v.errors import InputDataError, MissingInputError, OutputError
from bigw2v.vectors import (
    UnknownWordError,
    Vectors,
    load,
    load_word2vec_format,
    save_word2vec_format,
    unit_rows,
)


def small_vectors():
    # Hand-placed 3-d points: "cat" and "dog" close, "car" far, "zero" empty.
    words = ["the", "cat", "dog", "car", "zero"]
    matrix = np.array([
        [1.0, 1.0, 1.0],
        [1.0, 0.1, 0.0],
        [0.9, 0.2, 0.0],
        [0.0, 0.0, 2.0],
        [0.0, 0.0, 0.0],
    ], dtype=np.float32)
    return Vectors(words, matrix, counts=[50, 40, 30, 20, 10])


def random_vectors(count=200, dim=7, seed=0):
    rng = np.random.default_rng(seed)
    # Words with non-ASCII letters and the C tool's end-of-sentence token.
    words = ["</s>"] + [f"w{i}" for i in range(count - 3)] + ["café", "日本"]
    matrix = rng.normal(size=(count, dim)).astype(np.float32)
    matrix[3] = [1e-38, -3.4e38, 1.17549435e-38, 0.1, -0.0, 1 / 3, 7e-45][:dim]
    return Vectors(words, matrix)


def test_basic_lookups():
    v = small_vectors()
    assert len(v) == 5 and v.dim == 3
    assert "cat" in v and "cow" not in v
    assert v.index("dog") == 2
    np.testing.assert_array_equal(v["car"], [0.0, 0.0, 2.0])
    assert list(v.counts) == [50, 40, 30, 20, 10]


def test_unknown_word_error_is_keyerror_and_input_error():
    v = small_vectors()
    with pytest.raises(UnknownWordError) as info:
        v["cow"]
    assert isinstance(info.value, KeyError) and isinstance(info.value, InputDataError)
    assert str(info.value) == "word 'cow' is not in the vocabulary"
    with pytest.raises(KeyError):
        v.most_similar("cow")


def test_unit_vectors_are_unit_and_zero_rows_stay_zero():
    v = small_vectors()
    unit = v.unit_vectors()
    assert unit.dtype == np.float32
    assert not np.isnan(unit).any()
    np.testing.assert_allclose(np.linalg.norm(unit[:4], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(unit[4], 0.0)
    assert v.unit_vectors() is unit  # cached
    assert v.vectors[3, 2] == 2.0  # the original is untouched


def test_unit_vectors_prefix_without_cache():
    v = small_vectors()
    np.testing.assert_allclose(v.unit_vectors(2), unit_rows(v.vectors)[:2])
    assert v._unit_vectors is None


def test_most_similar_orders_and_excludes_inputs():
    v = small_vectors()
    result = v.most_similar("cat", topn=10)
    names = [w for w, _ in result]
    assert names[0] == "dog"
    assert "cat" not in names
    # "car" (orthogonal) and "zero" (no vector) tie at 0: the more frequent comes first.
    assert names == ["dog", "the", "car", "zero"]
    assert result[2][1] == result[3][1] == 0.0
    scores = [s for _, s in result]
    assert scores == sorted(scores, reverse=True)
    expected = float(np.dot(v.vectors[1], v.vectors[2])
                     / np.linalg.norm(v.vectors[1]) / np.linalg.norm(v.vectors[2]))
    assert result[0][1] == pytest.approx(expected, rel=1e-6)
    assert v.most_similar(["cat"], topn=1) == result[:1]
    assert v.most_similar("cat", topn=0) == []


def test_most_similar_restrict_vocab_and_negative():
    v = small_vectors()
    # Only the first three rows are candidates; "cat" itself is excluded.
    assert [w for w, _ in v.most_similar("cat", restrict_vocab=3)] == ["dog", "the"]
    # A query word outside the restricted rows still works as a query.
    assert [w for w, _ in v.most_similar("car", restrict_vocab=2)] == ["the", "cat"]
    names = [w for w, _ in v.most_similar(positive=["the"], negative=["car"])]
    assert "the" not in names and "car" not in names
    assert names[0] == "dog"  # the most "the"-like and least "car"-like (largest y)


def test_similarity():
    v = small_vectors()
    assert v.similarity("cat", "cat") == pytest.approx(1.0)
    assert v.similarity("cat", "car") == pytest.approx(0.0)
    assert v.similarity("zero", "cat") == 0.0


def test_analogy_on_constructed_vectors():
    # Gender and royalty directions: king - man + woman lands on queen.
    man, woman = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    royal = np.array([0, 0, 1.0, 0])
    matrix = np.array([man, woman, man + royal, woman + royal, [0, 0, 0, 1.0], man + 0.1],
                      dtype=np.float32)
    v = Vectors(["man", "woman", "king", "queen", "apple", "boy"], matrix)
    assert v.analogy("man", "king", "woman", topn=1)[0][0] == "queen"
    assert v.most_similar(positive=["king", "woman"], negative=["man"])[0][0] == "queen"


def test_vectors_shape_mismatch_is_an_error():
    with pytest.raises(InputDataError):
        Vectors(["a", "b"], np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(InputDataError):
        Vectors(["a"], np.zeros(3, dtype=np.float32))


# ---------------------------------------------------------------------------
# model directories


def write_model(directory, words, counts, matrix, **meta_overrides):
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(directory, exist_ok=True)
    meta = {"format": "bigw2v-model", "version": 1, "complete": True,
            "vocab_size": len(words), "dim": matrix.shape[1], "settings": {}, "figures": {}}
    meta.update(meta_overrides)
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(meta, f)
    pq.write_table(pa.table({"word": words, "count": pa.array(counts, pa.int64())}),
                   os.path.join(directory, "vocab.parquet"))
    np.save(os.path.join(directory, "vectors.npy"), matrix)
    return directory


def test_load_model_directory(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    modeldir = write_model(tmp_path / "m", ["a", "b", "c", "d"], [9, 5, 3, 1], matrix)
    # Extra output weights must not confuse the loader.
    np.save(modeldir / "output_vectors.npy", np.zeros((4, 3), dtype=np.float32))
    v = load(str(modeldir))
    assert v.words == ["a", "b", "c", "d"]
    assert list(v.counts) == [9, 5, 3, 1]
    np.testing.assert_array_equal(v.vectors, matrix)
    assert isinstance(v.vectors, np.memmap) and not v.vectors.flags.writeable
    assert v.most_similar("d", topn=1)[0][0] == "c"
    in_memory = load(modeldir, mmap=False)
    assert not isinstance(in_memory.vectors, np.memmap)


def test_load_missing_model(tmp_path):
    with pytest.raises(MissingInputError, match="nothing does not exist"):
        load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="not a bigw2v model directory"):
        load(tmp_path / "empty")


def test_load_incomplete_model(tmp_path):
    matrix = np.zeros((2, 3), dtype=np.float32)
    modeldir = write_model(tmp_path / "m", ["a", "b"], [2, 1], matrix, complete=False)
    with pytest.raises(InputDataError, match="training did not finish"):
        load(modeldir)


def test_load_model_with_disagreeing_sizes(tmp_path):
    matrix = np.zeros((2, 3), dtype=np.float32)
    modeldir = write_model(tmp_path / "m", ["a", "b"], [2, 1], matrix, vocab_size=3)
    with pytest.raises(InputDataError, match="sizes disagree"):
        load(modeldir)


def test_load_model_with_missing_vectors(tmp_path):
    modeldir = write_model(tmp_path / "m", ["a"], [1], np.zeros((1, 2), dtype=np.float32))
    os.remove(modeldir / "vectors.npy")
    with pytest.raises(MissingInputError, match="vectors.npy"):
        load(modeldir)


# ---------------------------------------------------------------------------
# word2vec formats


@pytest.mark.parametrize("binary", [True, False])
def test_word2vec_format_round_trip(tmp_path, binary):
    v = random_vectors()
    path = tmp_path / ("v.bin" if binary else "v.txt")
    save_word2vec_format(v, path, binary=binary)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    for read_as in (None, binary):
        back = load_word2vec_format(path, binary=read_as)
        assert back.words == v.words
        assert back.counts is None
        np.testing.assert_array_equal(back.vectors, v.vectors)


def test_binary_layout_is_the_c_tools(tmp_path):
    v = Vectors(["ab", "é"], np.array([[1.5, -2.0], [0.0, 3.25]], dtype=np.float32))
    path = tmp_path / "v.bin"
    save_word2vec_format(v, path)
    expected = (b"2 2\n"
                + b"ab " + np.array([1.5, -2.0], "<f4").tobytes() + b"\n"
                + "é".encode() + b" " + np.array([0.0, 3.25], "<f4").tobytes() + b"\n")
    assert path.read_bytes() == expected


def test_text_layout(tmp_path):
    v = Vectors(["ab", "cd"], np.array([[1.5, -2.0], [0.1, 3.25]], dtype=np.float32))
    path = tmp_path / "v.txt"
    save_word2vec_format(v, path, binary=False)
    lines = path.read_text().splitlines()
    assert lines[0] == "2 2"
    assert lines[1] == "ab 1.5 -2"
    assert lines[2].split()[0] == "cd" and np.float32(lines[2].split()[1]) == np.float32(0.1)


@pytest.mark.parametrize("binary", [True, False])
def test_gensim_reads_our_files(tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    v = random_vectors()
    path = tmp_path / "v.out"
    save_word2vec_format(v, path, binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == v.words
    np.testing.assert_array_equal(kv.vectors, v.vectors)


@pytest.mark.parametrize("binary", [True, False])
def test_we_read_gensims_files(tmp_path, binary):
    gensim_models = pytest.importorskip("gensim.models")
    v = random_vectors()
    kv = gensim_models.KeyedVectors(v.dim)
    kv.add_vectors(v.words, v.vectors)
    path = tmp_path / "g.out"
    kv.save_word2vec_format(str(path), binary=binary)
    back = load_word2vec_format(path)
    assert back.words == v.words
    np.testing.assert_array_equal(back.vectors, v.vectors)


def test_read_c_tool_text_with_trailing_spaces(tmp_path):
    # The C tool prints "%lf " after every value, so lines end in a space.
    path = tmp_path / "c.txt"
    path.write_text("2 3\n</s> 0.001 -0.002 0.003 \nthe 1.000000 2.000000 -3.500000 \n")
    v = load_word2vec_format(path)
    assert v.words == ["</s>", "the"]
    np.testing.assert_array_equal(v.vectors[1], [1.0, 2.0, -3.5])


def test_bad_word2vec_files(tmp_path):
    with pytest.raises(MissingInputError):
        load_word2vec_format(tmp_path / "none.bin")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"hello world\nfoo\n")
    with pytest.raises(InputDataError, match="not a word2vec file"):
        load_word2vec_format(garbage)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(InputDataError):
        load_word2vec_format(empty)
    truncated = tmp_path / "truncated.bin"
    save_word2vec_format(random_vectors(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-20])
    with pytest.raises(InputDataError, match="truncated"):
        load_word2vec_format(truncated, binary=True)


def test_save_errors(tmp_path):
    with pytest.raises(OutputError):
        save_word2vec_format(random_vectors(), tmp_path / "no" / "such" / "dir.bin")
    spaced = Vectors(["new york"], np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(InputDataError, match="whitespace"):
        save_word2vec_format(spaced, tmp_path / "x.bin")
    assert not os.listdir(tmp_path)
