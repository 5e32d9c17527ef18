"""Tests for bigw2v.wordtable: the Numba tokenizer and hash table against Python references."""

import random
from collections import Counter

import numpy as np
import pytest

from bigw2v import corpus
from bigw2v.wordtable import KEY_BYTES, WordTable, is_utf8, word_hash, word_partitions


def reference_counts(text):
    """Canonical word -> count, the slow way (corpus.split_words + canonical_word)."""
    return Counter(corpus.canonical_word(w) for w in corpus.split_words(text))


def table_counts(table):
    words, counts, _ = table.word_counts()
    got = words.to_pylist()
    assert len(set(got)) == len(got), "word_counts must return each word once"
    return dict(zip(got, counts.tolist()))


def random_text(rng, n_words, alphabet=(b"ab", b"c", b"\xc3\xa9", b"\xff", b"\x0b", b"z" * 700)):
    out = bytearray()
    for _ in range(n_words):
        out += b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        out += rng.choice([b" ", b"\t", b"\n", b"\r\n", b"  "])
    return bytes(out)


def test_short_keys_that_differ_only_in_zero_bytes_or_length_stay_apart():
    # Counting trusts an equal hash and length for keys of up to 8 bytes (one
    # hash chunk, mapped one to one); zero padding must not merge any of these.
    words = [b"a", b"a\x00", b"\x00a", b"a\x00\x00", b"\x00", b"\x00\x00", b"abcdefgh",
             b"abcdefg\x00", b"abcdefghi", b"abcdefgh\x00", b"\x00" * 8, b"\x00" * 9]
    text = b" ".join(w for k, w in enumerate(words) for _ in range(k + 1))
    table = WordTable(rows=1)
    table.count_block(text)
    assert table_counts(table) == reference_counts(text)
    assert len(table) == len(words)


@pytest.mark.parametrize("seed", range(6))
def test_counts_equal_the_python_reference(seed):
    rng = random.Random(seed)
    text = random_text(rng, 3000)
    table = WordTable(rows=4, arena_bytes=8)  # tiny: every array must grow many times
    tokens = table.count_block(text)[0]
    assert tokens == len(corpus.split_words(text))
    assert table_counts(table) == reference_counts(text)


@pytest.mark.parametrize("seed", range(3))
def test_growing_mid_block_keeps_the_line_edges_and_counts(seed):
    """A table that must grow many times within one block (segments of words
    restart after each growth) gives the same counts and line edges as one
    roomy enough from the start."""
    rng = random.Random(seed)
    lines = [" ".join(f"w{rng.randrange(20_000)}" for _ in range(rng.randint(0, 40)))
             for _ in range(600)]
    text = ("\n".join(lines) + rng.choice(["", "\n", " tail"])).encode()
    roomy = WordTable(rows=1 << 16, arena_bytes=1 << 20)
    expected = roomy.count_block(text)
    tiny = WordTable(rows=1, arena_bytes=1)
    assert tiny.count_block(text) == expected == reference_line_edges(text)
    assert expected[0] > 5_000
    assert table_counts(tiny) == table_counts(roomy) == reference_counts(text)


def reference_line_edges(text):
    """count_block's (tokens, first, middle, last, newline), the slow way."""
    tokens = len(corpus.split_words(text))
    lines = text.split(b"\n")
    if len(lines) == 1:
        return tokens, tokens > 0, 0, False, False
    has_word = [bool(corpus.split_words(line)) for line in lines]
    return tokens, has_word[0], sum(has_word[1:-1]), has_word[-1], True


def test_a_table_keeps_counting_across_blocks_and_clear_forgets():
    table = WordTable(rows=2)
    table.count_block(b"x y x")
    table.count_block(np.frombuffer(b"y y z", np.uint8))  # arrays are taken as blocks too
    assert table_counts(table) == {"x": 2, "y": 3, "z": 1}
    table.clear()
    assert len(table) == 0 and table_counts(table) == {}
    table.count_block(b"z")
    assert table_counts(table) == {"z": 1}


def test_many_distinct_words_rehash_without_losing_any():
    words = [f"w{i}" for i in range(50_000)]
    text = (" ".join(words) + "\n" + " ".join(words[::7])).encode()
    table = WordTable(rows=1)
    table.count_block(text)
    got = table_counts(table)
    assert len(got) == 50_000 and got["w0"] == 2 and got["w1"] == 1 and got["w49999"] == 1 + (49999 % 7 == 0)


def test_long_words_count_by_their_first_key_bytes():
    head = b"q" * (KEY_BYTES - 1)
    text = head + b"a" + b"x" * 500 + b" " + head + b"a" + b" " + head + b"b"
    table = WordTable()
    table.count_block(text)
    assert len(table) == 2  # the first two share their first KEY_BYTES bytes
    assert table_counts(table) == reference_counts(text) == {"q" * (KEY_BYTES - 1): 3}


def test_canonical_collisions_merge_into_one_word():
    # \xff and \xfe both become U+FFFD, which is also a word of its own here.
    text = b"\xff \xfe " + "\ufffd".encode() + b" ok \xff"
    table = WordTable()
    table.count_block(text)
    assert table_counts(table) == {"\ufffd": 4, "ok": 1}


def test_absorb_adds_another_tables_counts():
    a, b = WordTable(rows=1), WordTable(rows=1)
    rng = random.Random(3)
    ta, tb = random_text(rng, 500), random_text(rng, 500)
    a.count_block(ta)
    b.count_block(tb)
    a.absorb(b)
    assert table_counts(a) == reference_counts(ta) + reference_counts(tb)


@pytest.mark.parametrize("seed", range(3))
def test_utf8_check_agrees_with_pythons_strict_decoder(seed):
    rng = random.Random(seed)
    interesting = [0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEE, 0xEF,
                   0xF0, 0xF4, 0xF5, 0xFF, 0x90, 0x9F, 0xA0, 0x8F]
    samples = [bytes(rng.choice(interesting) for _ in range(rng.randint(0, 5))) for _ in range(20_000)]
    samples += ["é中😀".encode(), b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80"]
    for s in samples:
        try:
            s.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        data = np.frombuffer(b"#" + s + b"#", np.uint8)
        assert is_utf8(data, 1, 1 + len(s)) == valid, s


def test_lookup_tables_find_rows_and_reject_repeats():
    words = ["the", "é", "中文", "a" * 1000, ""][:4]
    table = WordTable.from_words(words)
    assert [table.find(w.encode()) for w in words] == [0, 1, 2, 3]
    assert table.find(b"nope") == -1 and table.find(b"th") == -1
    with pytest.raises(ValueError, match="occurs twice"):
        WordTable.from_words(["a", "b", "a"])


@pytest.mark.parametrize("seed", range(4))
def test_encoding_equals_a_dict_lookup_of_canonical_words(seed):
    rng = random.Random(seed)
    text = random_text(rng, 2000)
    counts = reference_counts(text)
    vocab = [w for w, _ in counts.most_common()][::2]  # half the words are unknown
    table = WordTable.from_words(vocab)
    rows = {w: i for i, w in enumerate(vocab)}
    ids, line_ends = table.encode_block(text)
    expected, ends = [], []
    for line in text.split(b"\n")[:-1] + [None]:
        if line is None:
            break
        expected += [rows[c] for c in map(corpus.canonical_word, corpus.split_words(line)) if c in rows]
        ends.append(len(expected))
    last = text.split(b"\n")[-1]
    expected += [rows[c] for c in map(corpus.canonical_word, corpus.split_words(last)) if c in rows]
    assert ids.tolist() == expected
    assert line_ends.tolist() == ends


def test_many_unresolved_words_in_one_block():
    # More invalid-UTF-8 words than the kernel's buffer of them holds at once.
    words = [b"\xff%d" % i for i in range(5000)]
    table = WordTable.from_words(["\ufffd%d" % i for i in range(0, 5000, 2)])
    ids, _ = table.encode_block(b" ".join(words))
    assert ids.tolist() == list(range(2500))


def reference_hash(key: bytes) -> int:
    """``wordtable.key_hash`` in plain Python integers."""
    h = 0x9E3779B97F4A7C15
    for i in range(0, len(key), 8):
        h = ((h ^ int.from_bytes(key[i:i + 8], "little")) * 0xFF51AFD7ED558CCD) % 2**64
        h ^= h >> 32
    return h ^ len(key)


def test_scanner_hashes_and_cuts_words_at_every_chunk_and_key_boundary():
    from bigw2v.wordtable import KEY_BYTES, _scan_word
    from numba import njit

    @njit
    def scan_all(block):
        out = []
        i, n = 0, block.shape[0]
        while i < n:
            if block[i] in (9, 10, 13, 32):
                i += 1
                continue
            length, end, h = _scan_word(block, i, n)
            out.append((i, length, end, h))
            i = end
        return out

    rng = random.Random(7)
    lengths = [1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, KEY_BYTES - 1, KEY_BYTES, KEY_BYTES + 1,
               KEY_BYTES + 7, 3000]
    for trial in range(40):
        words = [bytes(rng.choice(b"ab\x00\xff\x0b") for _ in range(rng.choice(lengths)))
                 for _ in range(rng.randint(1, 6))]
        text = b"".join(w + rng.choice([b" ", b"\n", b"\t\r"]) for w in words)
        if trial % 2:
            text = text.rstrip(b" \n\t\r")  # the last word ends the block
        found = scan_all(np.frombuffer(text, np.uint8))
        assert len(found) == len(words)
        for (start, length, end, h), word in zip(found, words):
            assert text[start:end] == word
            assert length == min(len(word), KEY_BYTES)
            assert int(h) == reference_hash(word[:KEY_BYTES])


def reference_partition(word: bytes, partitions: int) -> int:
    """The partition of a word in plain Python: MurmurHash3's finaliser of its hash, high
    32 bits, modulo the number of partitions."""
    h = reference_hash(word)
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h = ((h ^ (h >> 33)) * mult) % 2**64
    h ^= h >> 33
    return (h >> 32) % partitions


def test_partitions_are_stable_hashes_of_the_utf8_word():
    # Fixed by the format (runs on disk rely on it): 8-byte little-endian
    # chunks folded from a seed, xor the length; MurmurHash3's finaliser;
    # high 32 bits.
    words = [f"word{i}" for i in range(1000)] + ["é", "😀", "a" * 40, ""]
    for word in words:
        assert int(word_hash(word.encode())) == reference_hash(word.encode()), word
    for partitions in (16, 7, 1):
        parts = word_partitions(words, partitions)
        assert parts.tolist() == [reference_partition(w.encode(), partitions) for w in words]
        assert set(parts.tolist()) == set(range(partitions))
    # Two values written out, so that a change to the reference above shows too.
    assert int(word_hash(b"word0")) == 0x42F6868BE2FD9BF4
    assert word_partitions(["word0", "word1"], 16).tolist() == [15, 6]


def test_warm_up_runs_every_kernel_python_calls():
    from bigw2v import wordtable
    wordtable.warm_up()
    called_from_python = [wordtable.count_words, wordtable.encode_words, wordtable.absorb_rows,
                          wordtable.lookup, wordtable._build, wordtable.key_flags,
                          wordtable.partition_of, wordtable._rehashed, wordtable.grown]
    assert all(f.signatures for f in called_from_python), [
        f.__name__ for f in called_from_python if not f.signatures]


def test_real_messy_text_counts_and_encodes_as_the_python_reference():
    """Raw Wikipedia (UTF-8, mixed case, punctuation, tags) from ../shared, when present."""
    import lzma

    from conftest import shared_file

    with lzma.open(shared_file("wiki-raw-sample.txt.xz"), "rb") as f:
        text = f.read(8 * 2**20)
    text = text[:text.rfind(b" ") + 1]  # whole words only
    table = WordTable(rows=1)
    tokens = table.count_block(text)[0]
    expected = reference_counts(text)
    assert tokens == sum(expected.values())
    assert table_counts(table) == expected
    vocab = [w for w, n in expected.most_common() if n >= 3]
    rows = {w: i for i, w in enumerate(vocab)}
    ids, _ = WordTable.from_words(vocab).encode_block(text)
    assert ids.tolist() == [rows[w] for w in map(corpus.canonical_word, corpus.split_words(text))
                            if w in rows]
