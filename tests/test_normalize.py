"""count --normalize lower|words: the kernel against a Python reference of the rule.

The reference below is written from the rule as docs/formats.md and
normalize.py state it, with regular expressions and unicodedata, sharing no
code with the Numba kernel (wordtable.normalize_block) it checks.
"""

import json
import lzma
import os
import re
import unicodedata
from collections import Counter

import numpy as np
import pytest

import bigw2v
from bigw2v import wordtable
from bigw2v.corpus import canonical_word, split_words
from bigw2v.errors import UsageError
from bigw2v.workdir import read_manifest, read_vocab
from bigw2v.wordtable import WordTable
from conftest import shared_file

MODES = ("lower", "words")

# ---------------------------------------------------------------- the reference

_BLOCKS = ((0x80, 0xFF), (0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFFEF))


def _separator(code):
    category = unicodedata.category(chr(code))
    return (category[0] in "PSZ" and category != "Pc") or category == "Cc"


_ASCII_SEPARATORS = bytes(b for b in range(128)
                          if b != 0x0A and not re.fullmatch(rb"[A-Za-z0-9_]", bytes([b])))
_WIDE_SEPARATORS = [chr(c).encode("utf-8") for lo, hi in _BLOCKS for c in range(lo, hi + 1)
                    if _separator(c)]
_SEPARATOR = re.compile(b"[" + re.escape(_ASCII_SEPARATORS) + b"]|"
                        + b"|".join(map(re.escape, _WIDE_SEPARATORS)))
_CAPITALS = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def reference_bytes(text, mode):
    """The text as the kernel should hand it to the tokenizer: same length, same LFs."""
    if mode == "words":
        text = _SEPARATOR.sub(lambda m: b" " * len(m.group()), text)
    return text.translate(_CAPITALS)


def reference_words(text, mode):
    """Every word of the text, normalised, in order."""
    if mode == "words":
        text = _SEPARATOR.sub(b" ", text)
    return [canonical_word(w).lower() for w in split_words(text)]


def reference_sentences(text, mode):
    return sum(1 for line in text.split(b"\n") if reference_words(line, mode))


def table_counts(table):
    words, counts, _ = table.word_counts()
    return dict(zip(words.to_pylist(), counts.tolist()))


# ---------------------------------------------------------------- generated text

PIECES = [b"Paris", b"PARIS", b"paris", b"Bob's", b"U.S.", b"don't", b"x_y", b"A1b2", b"1990",
          b"\xc3\x89cole", b"\xc3\xa9cole", b"\xce\xa3\xce\x91\xce\xa3", b"Stra\xc3\x9fe",
          b"\xc4\xb0stanbul", b"\xd0\x9c\xd0\xbe\xd1\x81\xd0\xba\xd0\xb2\xd0\xb0", b"\xef\xbc\xa1",
          b"\xe2\x80\x9cq\xe2\x80\x9d", b"\xe2\x80\x93", b"\xc2\xa0", b"\xc2\xab", b"\xc3\x97",
          b"\xe3\x80\x82", b"\xef\xbc\x81", b"\xef\xbc\xbf", b"\xc2\xad", b"\xe2\x80\x8d",
          b"\xff", b"\xe2\x80", b"\xc2", b"\xe2\x80\x9c\xe2", b"<doc", b'id="7">', b"a,b;c",
          b"(x)", b"\x00", b"\x0b", b"\x7f", b"~`!@#$%^&*-+=[]{}|\\:;'<>,.?/", b"\xf0\x9f\x98\x80"]
GAPS = [b" ", b"  ", b"\t", b"\r\n", b"\n", b"", b"", b"-", b"."]


def generated(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(PIECES[rng.integers(len(PIECES))])
        out.append(GAPS[rng.integers(len(GAPS))])
    return b"".join(out)


@pytest.mark.parametrize("mode", MODES)
def test_the_kernel_rewrites_bytes_as_the_reference(mode):
    for seed in range(20):
        text = generated(400, seed)
        for cut in (0, 1, 3, 7):  # every alignment of the 8-byte chunks, and short tails
            data = np.frombuffer(text[cut:], np.uint8)
            out = wordtable.normalized(data, mode)[0]
            assert out.tobytes() == reference_bytes(text[cut:], mode), (seed, cut)


@pytest.mark.parametrize("mode", MODES)
def test_generated_text_counts_and_encodes_as_the_reference(mode):
    text = generated(30000, 1)
    cuts = [0] + [text.index(b" ", len(text) * k // 5) + 1 for k in (1, 3)] + [len(text)]
    blocks = [text[i:j] for i, j in zip(cuts, cuts[1:])]  # blocks end at a separator
    table = WordTable(rows=16, arena_bytes=64, normalize=mode)  # grows as it goes
    tokens = sum(table.count_block(b)[0] for b in blocks)
    expected = Counter(reference_words(text, mode))
    assert tokens == sum(expected.values())
    assert table_counts(table) == expected
    if mode == "words":
        assert {"paris", "école", "σας", "straße", "i̇stanbul", "москва", "ａ", "bob", "s", "u",
                "x_y", "don", "t", "1990", "doc", "id", "7"} <= set(expected)
        assert not {"don't", "“q”", "–", "\xa0", "!"} & set(expected)
    vocab = [w for w, n in expected.most_common() if n >= 2]
    rows = {w: i for i, w in enumerate(vocab)}
    ids, _ = WordTable.from_words(vocab, normalize=mode).encode_block(text)
    assert ids.tolist() == [rows[w] for w in reference_words(text, mode) if w in rows]


def test_normalizing_leaves_the_default_path_and_needs_a_known_mode():
    text = generated(2000, 3)
    plain = WordTable()
    plain.count_block(text)
    assert table_counts(plain) == Counter(map(canonical_word, split_words(text)))
    with pytest.raises(UsageError, match="none, lower or words"):
        WordTable(normalize="upper")


# ---------------------------------------------------------------- real messy text


@pytest.fixture(scope="module")
def raw_sample():
    """The first 3 MB of raw Wikipedia (UTF-8, mixed case, punctuation, <doc> lines)."""
    with lzma.open(shared_file("wiki-raw-sample.txt.xz"), "rb") as f:
        text = f.read(3 * 2**20)
    return text[:text.rfind(b"\n") + 1]


@pytest.mark.parametrize("mode", MODES)
def test_raw_wikipedia_counts_trains_and_encodes_as_the_reference(raw_sample, mode, tmp_path):
    path = tmp_path / "raw.txt"
    path.write_bytes(raw_sample)
    expected = Counter(reference_words(raw_sample, mode))
    work = str(tmp_path / "work")
    manifest = bigw2v.count([str(path)], work, min_count=1, threads=2, progress=False,
                            normalize=mode)
    words, counts = read_vocab(work)
    assert dict(zip(words, counts.tolist())) == expected
    assert manifest["totals"]["tokens"] == sum(expected.values())
    assert manifest["totals"]["sentences"] == reference_sentences(raw_sample, mode)
    assert read_manifest(work)["settings"]["normalize"] == mode
    assert "paris" in expected and "Paris" not in expected
    if mode == "words":
        assert "paris," not in expected and "<doc" not in expected and "doc" in expected
    else:
        assert "paris," in expected
    # train's encoding applies the same rule: every counted token is found again.
    vocab = [w for w, n in expected.most_common() if n >= 3]
    rows = {w: i for i, w in enumerate(vocab)}
    ids, _ = WordTable.from_words(vocab, normalize=mode).encode_block(raw_sample)
    assert ids.tolist() == [rows[w] for w in reference_words(raw_sample, mode) if w in rows]


# ---------------------------------------------------------------- the workdir and the model


def test_the_normalisation_is_recorded_reused_and_applied_by_train(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("The cat, the CAT; The Cat.\nA dog. A DOG!\n" * 200)
    work = str(tmp_path / "w")
    first = bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False)
    assert first["settings"]["normalize"] is None and "Cat." in read_vocab(work)[0]
    again = bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False,
                         normalize="words")
    # Another normalisation: nothing reused, the inputs counted again.
    assert again["last_run"]["counted_inputs"] == 1 and not again["last_run"]["up_to_date"]
    assert read_vocab(work)[0] == ["cat", "the", "a", "dog"]  # ties: byte order
    same = bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False,
                        normalize="words")
    assert same["last_run"]["up_to_date"]
    with open(os.path.join(work, "runs", os.listdir(os.path.join(work, "runs"))[0],
                           "input.json")) as f:
        assert json.load(f)["normalize"] == "words"
    model = str(tmp_path / "m")
    info = bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    assert info["normalize"] == "words" and info["figures"]["corpus_tokens"] == 200 * 10
    vectors = bigw2v.load(model)
    with pytest.raises(KeyError, match="did you mean 'cat'"):
        vectors.most_similar("Cat")
    assert vectors.spellings_of("CAT.") == ["cat"] and vectors.spellings_of("zebra") == []


def test_similar_and_analogy_suggest_the_spelling_the_vocabulary_has(tmp_path):
    import subprocess
    import sys
    corpus = tmp_path / "c.txt"
    corpus.write_text("Paris France Berlin Germany\nparis france berlin germany\n" * 50)
    work, model = str(tmp_path / "w"), str(tmp_path / "m")
    bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False,
                 normalize="lower")
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    r = subprocess.run([sys.executable, "-m", "bigw2v", "analogy", model, "paris", "France",
                        "berlin"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 65, r.stderr
    assert r.stderr == ("bigw2v analogy: error: word 'France' is not in the vocabulary; "
                        "did you mean 'france'?\n")


def test_warm_up_compiles_the_normalising_kernels():
    wordtable.warm_up()
    for kernel in (wordtable.normalize_block, wordtable.ascii_key_flags):
        assert kernel.signatures, kernel


def test_a_missed_lookup_stays_cheap_and_the_message_suggests():
    from bigw2v.vectors import Vectors
    words = [f"w{i}" for i in range(200_000)] + ["paris"]
    vectors = Vectors(words, np.zeros((len(words), 2), np.float32))
    scans = []
    vectors.spellings_of = lambda word, limit=3: scans.append(word) or ["paris"]
    try:
        vectors["Paris"]
    except KeyError as e:
        error = e
    assert scans == []  # dict-like code that catches KeyError pays no vocabulary scan
    assert str(error) == "word 'Paris' is not in the vocabulary; did you mean 'paris'?"
    assert error.suggestions == ["paris"] and scans == ["Paris"]
