"""Tests for bigw2v.corpus: inputs, decompression, blocks, tokenisation, canonical words."""

import bz2
import gzip
import io
import lzma
import os
import random
import sys
import tracemalloc

import pyarrow as pa
import pytest

from bigw2v import corpus
from bigw2v.corpus import MAX_WORD_BYTES, canonical_word, iter_blocks, split_words
from bigw2v.errors import InputDataError, MissingInputError, UsageError

SEPARATORS = b" \t\r\n"


def reference_words(data: bytes) -> list[bytes]:
    """The C word2vec rule written the slow, obvious way."""
    words, current = [], bytearray()
    for byte in data:
        if byte in SEPARATORS:
            if current:
                words.append(bytes(current))
                current = bytearray()
        else:
            current.append(byte)
    if current:
        words.append(bytes(current))
    return words


def random_text(rng: random.Random, n_words: int, alphabet=b"abcdefgh\x0b\x0c\xc3\xa9\xff") -> bytes:
    out = bytearray()
    for _ in range(n_words):
        out += bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        out += bytes(rng.choice(SEPARATORS) for _ in range(rng.randint(1, 3)))
    return bytes(out)


class LazyReader:
    """A stream of `size` bytes made on demand, so the test itself holds no big buffer."""

    def __init__(self, size: int, pattern: bytes, tail: bytes = b""):
        self.left = size
        self.pattern = pattern
        self.tail = tail

    def read(self, n: int) -> bytes:
        if self.left <= 0:
            tail, self.tail = self.tail, b""
            return tail
        n = min(n, self.left)
        self.left -= n
        reps = n // len(self.pattern) + 1
        return (self.pattern * reps)[:n]


# ---------------------------------------------------------------- tokenisation


def test_split_words_follows_the_c_rule():
    text = b"  one\ttwo\r\nthree  four\n\nfi\x0bve si\x0cx\x1cseven\xa0eight \x85"
    assert split_words(text) == [b"one", b"two", b"three", b"four", b"fi\x0bve", b"si\x0cx\x1cseven\xa0eight",
                                 b"\x85"]
    assert split_words(b"") == []
    assert split_words(b" \t\r\n ") == []
    assert split_words(b"\x0b") == [b"\x0b"]


def test_split_words_fast_and_exact_paths_agree_with_reference():
    rng = random.Random(1)
    for _ in range(200):
        text = random_text(rng, rng.randint(0, 30))
        assert split_words(text) == reference_words(text)


# ---------------------------------------------------------------- blocks


@pytest.mark.parametrize("block_bytes", [1, 2, 3, 5, 7, 16, 100, 10_000])
def test_blocks_never_split_a_word(block_bytes):
    rng = random.Random(block_bytes)
    text = random_text(rng, 400)
    blocks = list(iter_blocks(io.BytesIO(text), block_bytes))
    assert b"".join(blocks) == text
    for block in blocks[:-1]:
        assert block[-1:] in (b" ", b"\t", b"\r", b"\n")
    words = [w for block in blocks for w in split_words(block)]
    assert words == reference_words(text)


def test_blocks_of_text_without_newline_are_bounded():
    size, block_bytes = 4_000_000, 65536
    longest = 0
    total = 0
    for block in iter_blocks(LazyReader(size, b"word "), block_bytes):
        longest = max(longest, len(block))
        total += len(block)
    assert total == size
    assert longest <= block_bytes


def test_giant_run_without_separator_is_truncated_in_bounded_memory():
    block_bytes = 65536
    tracemalloc.start()
    try:
        blocks = list(iter_blocks(LazyReader(20_000_000, b"x", tail=b" after\nend"), block_bytes))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    words = [w for block in blocks for w in split_words(block)]
    assert words == [b"x" * (MAX_WORD_BYTES + 1), b"after", b"end"]
    assert canonical_word(words[0]) == "x" * MAX_WORD_BYTES


def test_long_word_across_blocks_has_the_same_canonical_form_as_whole():
    word = "é" * 700 + "z"  # 1401 bytes, a two-byte character straddles byte 1000
    text = b"a " + ("x" + word).encode() + b" b"
    whole = [canonical_word(w) for w in split_words(text)]
    for block_bytes in (3, 64, 999, 1000, 1001):
        cut = [canonical_word(w) for block in iter_blocks(io.BytesIO(text), block_bytes)
               for w in split_words(block)]
        assert cut == whole


def test_long_word_inside_one_block_is_kept_for_canonical_word():
    text = b"a " + b"y" * 3000 + b" b"
    blocks = list(iter_blocks(io.BytesIO(text), 1 << 20))
    assert [canonical_word(w) for w in split_words(b"".join(blocks))] == ["a", "y" * MAX_WORD_BYTES, "b"]


def test_iter_blocks_rejects_bad_block_size():
    with pytest.raises(UsageError):
        list(iter_blocks(io.BytesIO(b"a"), 0))


# ---------------------------------------------------------------- canonical words


def test_canonical_word_decodes_and_replaces_invalid_bytes():
    assert canonical_word(b"caf\xc3\xa9") == "café"
    assert canonical_word(b"caf\xe9") == "caf\ufffd"
    assert canonical_word(b"\xff\xfe") == "\ufffd\ufffd"
    assert canonical_word(b"a\x0bb") == "a\x0bb"


def test_canonical_word_truncates_on_character_boundary():
    assert canonical_word(b"a" * 1500) == "a" * MAX_WORD_BYTES
    # two-byte character at bytes 999-1000: dropped whole, not half
    raw = b"a" * 999 + "é".encode() + b"bbb"
    assert canonical_word(raw) == "a" * 999
    # four-byte character at bytes 997-1000
    raw = b"a" * 997 + "😀".encode() + b"bbb"
    assert canonical_word(raw) == "a" * 997
    # character ending exactly at byte 1000 is kept
    raw = b"a" * 998 + "é".encode() + b"bbb"
    assert canonical_word(raw) == "a" * 998 + "é"
    # invalid continuation bytes at the cut: plain cut, then replacement
    raw = b"a" * 996 + b"\x80" * 10
    assert canonical_word(raw) == "a" * 996 + "\ufffd" * 4


def test_canonical_word_depends_only_on_first_max_plus_one_bytes():
    rng = random.Random(7)
    alphabet = ["a", "é", "中", "😀"]
    for _ in range(200):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(300, 700))).encode()
        raw = raw[rng.randint(0, 3):]  # sometimes start mid-character
        if len(raw) > MAX_WORD_BYTES:
            assert canonical_word(raw) == canonical_word(raw[: MAX_WORD_BYTES + 1])
            assert len(canonical_word(raw).encode()) <= MAX_WORD_BYTES + 6  # replacements may grow


# ---------------------------------------------------------------- inputs


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def zstd_bytes(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


COMPRESSORS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": zstd_bytes,
}


def read_all(inp) -> bytes:
    with corpus.open_input(inp) as stream:
        return b"".join(iter_blocks(stream, 1000, name=inp.path))


def mapped_words(inp, block_bytes):
    """Words and progress of ``input_blocks`` over a plain file (the mapped path)."""
    words, progress = [], []
    for block, read in corpus.input_blocks(inp, block_bytes):
        words += split_words(bytes(block))
        progress.append(read)
    return words, progress


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 100, 4096, 5000, 1 << 20])
def test_mapped_blocks_give_the_words_of_the_file(tmp_path, block_bytes):
    text = random_text(random.Random(block_bytes), 3000)
    [inp] = corpus.expand_inputs([str(write(tmp_path / "t.txt", text))])
    blocks = [(bytes(b), read) for b, read in corpus.input_blocks(inp, block_bytes)]
    assert b"".join(b for b, _ in blocks) == text
    for block, _ in blocks[:-1]:
        assert block[-1:] in (b" ", b"\t", b"\r", b"\n")
    reads = [read for _, read in blocks]
    assert reads == sorted(reads) and reads[-1] == len(text)


def test_mapped_blocks_keep_a_giant_word_as_the_stream_does(tmp_path):
    text = b"a\n" + b"x" * 300_000 + b"\nafter " + "é".encode() * 2000 + b" end"
    [inp] = corpus.expand_inputs([str(write(tmp_path / "t.txt", text))])
    for block_bytes in (64, 4096, 100_000):
        with corpus.open_input(inp) as stream:
            streamed = b"".join(iter_blocks(stream, block_bytes))
        words, progress = mapped_words(inp, block_bytes)
        # Raw bytes may differ past MAX_WORD_BYTES + 1; the words may not.
        canonical = [canonical_word(w) for w in words]
        assert canonical == [canonical_word(w) for w in split_words(streamed)]
        assert canonical == [canonical_word(w) for w in split_words(text)]
        assert progress[-1] == len(text)
        # The lines (LF count) survive the truncation too.
        assert sum(bytes(b).count(b"\n") for b, _ in corpus.input_blocks(inp, block_bytes)) == 2


def test_a_file_that_shrinks_while_mapped_is_an_input_error(tmp_path):
    path = write(tmp_path / "t.txt", b"word " * 10_000)
    [inp] = corpus.expand_inputs([str(path)])
    blocks = corpus.input_blocks(inp, 4096)
    first, _ = next(blocks)
    assert bytes(first[:5]) == b"word "
    del first  # its pages are about to go: touching them now would be fatal
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(InputDataError, match="shrank"):
        next(blocks)


def test_empty_and_compressed_files_are_read_not_mapped(tmp_path):
    empty = write(tmp_path / "e.txt", b"")
    packed = write(tmp_path / "p.gz", gzip.compress(b"one two\n"))
    e, p = corpus.expand_inputs([str(empty), str(packed)])
    assert list(corpus.input_blocks(e)) == []
    [(block, read)] = list(corpus.input_blocks(p))
    assert block == b"one two\n" and isinstance(block, bytes) and read == p.size


def test_a_named_pipe_is_read_once_as_a_stream(tmp_path):
    # A pipe cannot be mapped and has no size: it is streamed, opened once (a
    # writer that finds no reader between two opens would get EPIPE).
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = b"one two three\n" * 5000
    writer = threading.Thread(target=lambda: fifo.write_bytes(text))
    writer.start()
    [inp] = corpus.expand_inputs([str(fifo)])
    got = b"".join(bytes(b) for b, _ in corpus.input_blocks(inp, 4096))
    writer.join(timeout=10)
    assert got == text and not writer.is_alive()


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_inputs_read_like_plain(tmp_path, kind):
    text = random_text(random.Random(3), 3000)
    path = write(tmp_path / f"c.txt.{kind}", COMPRESSORS[kind](text))
    [inp] = corpus.expand_inputs([str(path)])
    assert inp.compression == kind
    assert inp.size == path.stat().st_size
    with corpus.open_input(inp) as stream:
        data = b"".join(iter_blocks(stream, 1000, name=inp.path))
        assert corpus.raw_bytes_read(stream) == inp.size
    assert data == text


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_misnamed_files_are_recognised_by_magic(tmp_path, kind):
    text = b"hello world\n" * 100
    compressed = write(tmp_path / "looks-plain.txt", COMPRESSORS[kind](text))
    plain = write(tmp_path / f"looks-compressed.{kind}", text)
    a, b = corpus.expand_inputs([str(compressed), str(plain)])
    assert (a.compression, b.compression) == (kind, None)
    assert read_all(a) == text
    assert read_all(b) == text


def test_text_starting_like_bzip2_is_plain(tmp_path):
    path = write(tmp_path / "t.txt", b"BZh9 is a word\n")
    [inp] = corpus.expand_inputs([str(path)])
    assert inp.compression is None
    assert read_all(inp) == b"BZh9 is a word\n"


def test_plain_input_counts_raw_bytes(tmp_path):
    path = write(tmp_path / "p.txt", b"abc def " * 1000)
    [inp] = corpus.expand_inputs([str(path)])
    with corpus.open_input(inp) as stream:
        assert corpus.raw_bytes_read(stream) == 0
        list(iter_blocks(stream, 100))
        assert stream.raw_bytes_read == inp.size == 8000


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2", "zst"])
def test_truncated_compressed_file_is_input_data_error(tmp_path, kind):
    data = COMPRESSORS[kind](random_text(random.Random(5), 20000))
    path = write(tmp_path / f"broken.{kind}", data[: len(data) // 2])
    [inp] = corpus.expand_inputs([str(path)])
    with pytest.raises(InputDataError, match="broken"):
        read_all(inp)


def test_corrupt_gzip_is_input_data_error(tmp_path):
    path = write(tmp_path / "bad.gz", b"\x1f\x8b\x08\x00" + b"garbage" * 100)
    [inp] = corpus.expand_inputs([str(path)])
    with pytest.raises(InputDataError, match="bad.gz"):
        read_all(inp)


def test_stdin_is_sniffed(monkeypatch):
    text = b"from standard input\n" * 50

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(gzip.compress(text)))

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    [inp] = corpus.expand_inputs(["-"])
    assert inp == corpus.InputFile("-", 0, 0, None)
    assert read_all(inp) == text


def test_plain_stdin_keeps_its_first_bytes(monkeypatch):
    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(b"ab cd ef"))

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    assert read_all(corpus.expand_inputs(["-"])[0]) == b"ab cd ef"


def test_counting_reader_serves_head_first():
    reader = corpus.CountingReader(io.BytesIO(b"56789"), head=b"01234")
    assert reader.read(3) == b"012"
    assert reader.read(4) == b"3456"
    assert reader.read() == b"789"
    assert reader.raw_bytes_read == 10


def test_directory_recurses_sorted_and_skips_hidden(tmp_path):
    root = tmp_path / "corpus"
    for rel in ["b.txt", "a/z.txt", "a/y.txt.gz", "c/d/e.txt", ".hidden.txt", ".git/config", "a/.x/f.txt"]:
        write(root / rel, b"w ")
    inputs = corpus.expand_inputs([str(root)])
    rels = [os.path.relpath(inp.path, root) for inp in inputs]
    assert rels == ["a/y.txt.gz", "a/z.txt", "b.txt", "c/d/e.txt"]
    assert all(os.path.isabs(inp.path) for inp in inputs)


def test_duplicates_are_read_once(tmp_path):
    path = write(tmp_path / "d" / "a.txt", b"w ")
    other = write(tmp_path / "d" / "b.txt", b"w ")
    inputs = corpus.expand_inputs([str(path), str(tmp_path / "d"), str(tmp_path / "d" / ".." / "d" / "a.txt")])
    assert [inp.path for inp in inputs] == [str(path), str(other)]


def test_missing_input_is_missing_input_error(tmp_path):
    with pytest.raises(MissingInputError, match="no such file or directory: .*nope"):
        corpus.expand_inputs([str(tmp_path / "nope.txt")])


def test_empty_directory_is_input_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="empty"):
        corpus.expand_inputs([str(tmp_path / "empty")])
    write(tmp_path / "hidden-only" / ".x", b"w")
    with pytest.raises(InputDataError, match="hidden-only"):
        corpus.expand_inputs([str(tmp_path / "hidden-only")])


def test_no_inputs_is_usage_error():
    with pytest.raises(UsageError):
        corpus.expand_inputs([])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_names_it(tmp_path):
    path = write(tmp_path / "secret.txt", b"w ")
    path.chmod(0)
    with pytest.raises(MissingInputError, match="secret.txt"):
        corpus.expand_inputs([str(path)])


def test_unreadable_file_is_reported_with_its_path(tmp_path, monkeypatch):
    # Simulated, so the test also means something when run as root.
    path = write(tmp_path / "locked.txt", b"w ")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(corpus, "open", refuse, raising=False)
    with pytest.raises(MissingInputError, match="locked.txt: Permission denied"):
        corpus.expand_inputs([str(path)])


def test_both_paths_of_split_words_separate_on_exactly_the_four_c_separators():
    # The rule, written once here: space, tab, CR and LF separate words; no other byte
    # does (bytes.split() would also split on \x0b, \x0c and, in str, more).
    rule = {0x20, 0x09, 0x0D, 0x0A}
    assert set(corpus.SEPARATOR_BYTES) == rule
    for byte in range(256):
        b = bytes([byte])
        for tail in (b"", b"\x0b", b"\x0c"):  # a \x0b or \x0c takes corpus's regex path
            block = b"x" + b + b + b"y" + tail
            expected = [b"x", b"y" + tail] if byte in rule else [block]
            assert split_words(block) == expected, (byte, tail)
            assert split_words(b + b"z" + tail) == ([b"z" + tail] if byte in rule
                                                    else [b + b"z" + tail])
