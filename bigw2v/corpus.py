"""Reading input text: which files, how to open them, how to cut them into words.

Nothing here counts anything; this module only turns paths into a stream of
byte blocks and blocks into words, with exactly the rules below.

Inputs
    ``-`` is standard input. A file is itself. A directory stands for every
    regular file below it, recursively, sorted by path, skipping hidden files
    and directories (names starting with ``.``); a Hugging Face datasets
    folder in it stands for its Arrow files. A path given twice is read
    once. Compressed files (gzip, bzip2, xz, zstd) are decompressed on the
    fly; the format is recognised by its magic bytes, so a misnamed file
    (``corpus.txt`` that is really gzip, or ``corpus.gz`` that is plain
    text) is still read correctly. Standard input and other non-regular
    files (pipes, ``<(xz -dc ...)``) are sniffed the same way when opened.

Tokenisation (the rule of the original C word2vec)
    A word is a maximal run of bytes other than space (0x20), tab (0x09),
    CR (0x0d) and LF (0x0a). A LF also ends a sentence. Every other byte,
    including the vertical tab 0x0b and form feed 0x0c that Python's
    ``bytes.split()`` would treat as whitespace, is part of a word.

Words as strings
    ``canonical_word`` turns a word's raw bytes into the vocabulary's string:
    keep at most ``MAX_WORD_BYTES`` bytes, backing off so as not to cut a
    UTF-8 character in half, then decode as UTF-8 with invalid bytes
    replaced by U+FFFD. Two raw words with the same canonical string are the
    same word.

Very long words
    A run of word bytes longer than ``MAX_WORD_BYTES`` that crosses a block
    boundary keeps only its first ``MAX_WORD_BYTES + 1`` bytes (one extra
    byte so ``canonical_word`` can still see whether the cut falls inside a
    character); the rest of the run is skipped. Memory stays bounded even for
    input with no separator at all, and the canonical word is the same as if
    the whole run had been kept.
"""

from __future__ import annotations

import io
import lzma
import mmap
import os
import re
import stat
import sys
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from . import records, remote
from .compression import FORMAT_NAMES, SNIFF_BYTES, decompressed, sniff
from .errors import InputDataError, MissingInputError, UsageError

MAX_WORD_BYTES = 1000
MAX_SENTENCE_WORDS = 10000
BLOCK_BYTES = 16 * 2**20


# The C tool's word separators (module docstring); a LF also ends a sentence.
# The one home of these bytes: the Numba tokenizer (wordtable.py) takes them from here.
SPACE, TAB, CR, LF = 0x20, 0x09, 0x0D, 0x0A
SEPARATOR_BYTES = bytes((SPACE, TAB, CR, LF))
_SEPARATOR_RUN = re.compile(b"[" + re.escape(SEPARATOR_BYTES) + b"]+")


@dataclass(frozen=True)
class InputFile:
    """One input as found by ``expand_inputs``.

    ``path`` is ``-`` for standard input, a URI for an object in a store
    (``remote.py``), else an absolute path. ``size`` and ``mtime_ns`` come
    from stat (0 for standard input) and let a later run notice a changed
    input. ``compression`` is the format found in the file's first bytes, or
    None for plain text and for inputs that can only be sniffed when opened
    (standard input, pipes, objects in a store). ``kind`` is ``text`` or a
    record format whose rows are lines (``records.py``), read by its
    ``field``.
    """

    path: str
    size: int
    mtime_ns: int
    compression: str | None
    kind: str = records.TEXT      # text, or a record format (records.py)
    field: str | None = None      # the text column or field asked for (None: the default rule)

    @property
    def remote(self) -> bool:
        return remote.is_uri(self.path)


@dataclass(frozen=True)
class FilePart:
    """Bytes ``start`` to ``stop`` of a plain local text file: a share of one large input.

    Read (``input_blocks``), both bounds move forward to a word boundary, just
    after the first separator at or after the byte before them, so the parts
    of a file read in order give each of its words once, whole: a word that
    straddles a bound belongs to the part before it. A part ends a sentence,
    as the end of a file does.
    """

    input: InputFile
    start: int
    stop: int

    @property
    def path(self) -> str:
        return self.input.path

    @property
    def size(self) -> int:
        return self.stop - self.start


def splittable(inp: InputFile) -> bool:
    """Whether ``inp`` can be read in parts (``FilePart``): a plain local text file."""
    return (inp.kind == records.TEXT and inp.compression is None and inp.path != "-"
            and not inp.remote and _mappable(inp.path))


# ---------------------------------------------------------------- inputs


def expand_inputs(paths: list[str], text_column: str | None = None,
                  text_field: str | None = None) -> list[InputFile]:
    """Turn command-line paths and URIs into the list of inputs to read, in order.

    ``text_column`` / ``text_field`` name the text of Parquet or Arrow
    inputs / of JSON Lines inputs (None: the default rule of ``records``).
    Raises MissingInputError for a path that does not exist or cannot be
    read, InputDataError for a directory with no (non-hidden) files in it.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("no input given: name a file, a directory or - for standard input")
    fields = {"column": text_column, "field": text_field}
    inputs: list[InputFile] = []
    seen: set[str] = set()
    for given in paths:
        for inp in _expand_one(os.fspath(given), fields):
            # realpath so "a.txt" and "./dir/../a.txt" are the same input;
            # the recorded path stays the absolute one the user can recognise.
            key = inp.path if inp.path == "-" or inp.remote else os.path.realpath(inp.path)
            if key not in seen:
                seen.add(key)
                inputs.append(inp)
    return inputs


def _expand_one(given: str, fields: dict) -> list[InputFile]:
    if given == "-":
        return [InputFile("-", 0, 0, None)]
    if remote.is_uri(given):
        local = remote.local_path(given)
        if local is None:
            return [_with_field(InputFile(o.uri, o.size, o.mtime_ns, None,
                                          records.kind_of(o.uri)), fields)
                    for o in remote.expand(given)]
        given = local
    return [_with_field(_describe(path), fields) for path in _local_paths(given)]


def _with_field(inp: InputFile, fields: dict) -> InputFile:
    if inp.kind == records.TEXT:
        return inp
    wanted = fields["field" if inp.kind == records.JSON_LINES else "column"]
    return InputFile(inp.path, inp.size, inp.mtime_ns, inp.compression, inp.kind, wanted)


def _local_paths(given: str) -> list[str]:
    path = os.path.abspath(given)
    if not os.path.exists(path):
        raise MissingInputError(f"no such file or directory: {given}")
    if not os.path.isdir(path):
        return [path]
    if records.is_datasets_folder(path):
        return records.datasets_files(path)
    found = []

    def fail(exc: OSError) -> None:
        raise MissingInputError(f"cannot read directory {exc.filename or path}: {exc.strerror}")

    for top, dirnames, filenames in os.walk(path, onerror=fail):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if records.is_datasets_folder(top):  # a datasets folder inside: its Arrow files only
            found.extend(records.datasets_files(top))
            dirnames[:] = []
            continue
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(top, name)
            if os.path.isfile(full):  # regular files only (follows symlinks)
                found.append(full)
    if not found:
        raise InputDataError(f"directory {given} contains no files")
    found.sort()
    return found


def _describe(path: str) -> InputFile:
    try:
        st = os.stat(path)
        head = b""
        if stat.S_ISREG(st.st_mode):
            # Non-regular files (pipes) are sniffed on open: reading their
            # first bytes now would lose them.
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
    except FileNotFoundError:
        raise MissingInputError(f"no such file or directory: {path}") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return InputFile(path, st.st_size, st.st_mtime_ns, sniff(head),
                     records.kind_of(path, head))


def current_state(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of an input now: a changed input must be counted again."""
    if remote.is_uri(path) and remote.local_path(path) is None:
        now = remote.stat(path)
        return now.size, now.mtime_ns
    st = os.stat(remote.local_path(path) or path)
    return st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------- opening


class CountingReader(io.RawIOBase):
    """A raw binary reader that counts the bytes it takes from the file.

    Decompressors hide how far into the file they are; wrapping the file
    below them in a CountingReader gives ``raw_bytes_read``, which divided
    by ``InputFile.size`` is the fraction of the input done. ``head`` holds
    bytes already taken from ``raw`` (while sniffing the format) and is
    served first; it is counted as read. Closing a CountingReader does not
    close ``raw``.
    """

    def __init__(self, raw: BinaryIO, head: bytes = b""):
        super().__init__()
        self._raw = raw
        self._head = head
        self.raw_bytes_read = len(head)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # Direct read (rather than RawIOBase's readinto-based one) saves a
        # copy of every block of plain text.
        if size is None:
            size = -1
        head = b""
        if self._head:
            if 0 <= size < len(self._head):
                head, self._head = self._head[:size], self._head[size:]
                return head
            head, self._head = self._head, b""
            if size == len(head):
                return head
            size = -1 if size < 0 else size - len(head)
        data = self._raw.read(size)
        self.raw_bytes_read += len(data)
        return head + data if head else data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class InputStream:
    """A decompressed binary stream over one input, as returned by ``open_input``.

    ``read(size)`` returns decompressed bytes (b"" at the end);
    ``raw_bytes_read`` is how many bytes of the file itself have been read so
    far, for progress. Decompression and read errors surface as
    InputDataError naming the file. Use as a context manager or call
    ``close()``; standard input is never closed.
    """

    def __init__(self, path: str, compression: str | None, decoded, counter: CountingReader, file=None):
        self.path = path
        self.name = path
        self.compression = compression
        self._decoded = decoded
        self._counter = counter
        self._file = file  # the OS file we opened and must close, if any

    @property
    def raw_bytes_read(self) -> int:
        return self._counter.raw_bytes_read

    # Enough of the file protocol for pyarrow.PythonFile (the JSON Lines reader).
    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        try:
            return self._decoded.read(size)
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
            raise _read_error(self.path, self.compression, exc) from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._decoded is not self._counter:
                self._decoded.close()
        except (OSError, ValueError):
            pass  # closing a half-read corrupt stream may complain again; we are done with it
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "InputStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()




def _read_error(path: str, compression: str | None, exc: BaseException) -> InputDataError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if compression:
        return InputDataError(f"{path}: corrupt or truncated {FORMAT_NAMES[compression]} data ({reason})")
    return InputDataError(f"cannot read {path}: {reason}")


def open_input(inp: InputFile) -> InputStream:
    """Open one input for reading, decompressing it if needed.

    Standard input and pipes are sniffed here (their first bytes are read
    and then served again), so ``xz -dc``-less compressed stdin works too.
    """
    file = None
    try:
        if inp.path == "-":
            raw = sys.stdin.buffer
            sniff_now = True
        elif inp.remote:
            file = raw = remote.open_stream(inp.path)
            sniff_now = True
        else:
            file = raw = open(inp.path, "rb", buffering=0)
            sniff_now = not stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except FileNotFoundError:
        raise MissingInputError(f"no such file or directory: {inp.path}") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {inp.path}: {exc.strerror or exc}") from None
    try:
        if sniff_now:
            head = _read_up_to(raw, SNIFF_BYTES)
            compression = sniff(head)
            counter = CountingReader(raw, head)
        else:
            compression = inp.compression
            counter = CountingReader(raw)
    except OSError as exc:
        if file is not None:
            file.close()
        raise _read_error(inp.path, None, exc) from None
    try:
        decoded = _decompressor(inp.path, compression, counter)
    except Exception:
        if file is not None:
            file.close()
        raise
    return InputStream(inp.path, compression, decoded, counter, file)


def raw_bytes_read(stream) -> int:
    """Bytes of the file itself read so far by a stream from ``open_input``.

    For progress: compare with ``InputFile.size``. 0 for streams that do not
    track it (any other file-like object).
    """
    return getattr(stream, "raw_bytes_read", 0)


def _read_up_to(raw: BinaryIO, n: int) -> bytes:
    """Read n bytes, or fewer only at the end: a pipe may deliver them piecemeal."""
    parts = []
    while n > 0:
        data = raw.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _decompressor(path: str, kind: str | None, counter: CountingReader):
    return decompressed(counter, kind, path)


# ---------------------------------------------------------------- blocks


def iter_blocks(stream, block_bytes: int = BLOCK_BYTES, name: str | None = None) -> Iterator[bytes]:
    """Yield the stream's bytes in blocks of about ``block_bytes``.

    Every block ends right after a separator byte (space, tab, CR, LF) or at
    the end of the input, so no word is ever split between two blocks and
    the words of the blocks, concatenated, are the words of the whole input.
    A run of word bytes crossing a block boundary keeps at most
    ``MAX_WORD_BYTES + 1`` bytes (see the module docstring), so memory stays
    about ``2 * block_bytes`` whatever the input. ``name`` is used in the
    InputDataError raised when reading fails (e.g. a corrupt .gz).
    """
    if block_bytes < 1:
        raise UsageError(f"block size must be at least 1 byte, not {block_bytes}")
    keep = MAX_WORD_BYTES + 1
    label = name or getattr(stream, "name", None) or "input"
    tail = b""  # bytes after the last separator seen: the start of a word
    skipping = False  # inside an over-long word: drop bytes up to the next separator
    while True:
        try:
            chunk = stream.read(block_bytes)
        except InputDataError:
            raise
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
            raise _read_error(str(label), getattr(stream, "compression", None), exc) from None
        if not chunk:
            break
        if skipping:
            start = _first_separator(chunk)
            if start < 0:
                continue
            chunk = chunk[start:]
            skipping = False
        end = _last_separator(chunk)
        if end < 0:
            room = keep - len(tail)
            if len(chunk) > room:
                tail += chunk[:room]
                skipping = True
            else:
                tail += chunk
            continue
        block = chunk if end + 1 == len(chunk) else chunk[: end + 1]
        if tail:
            block = tail + block
        tail = chunk[end + 1 :]
        if len(tail) > keep:
            tail = tail[:keep]
            skipping = True
        yield block
    if tail:
        yield tail


def input_blocks(inp: InputFile, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[object, int]]:
    """Yield (block, bytes of the file read so far) over one input, by ``iter_blocks``'s rules.

    A plain regular file is memory-mapped a block at a time instead of read:
    its blocks are read-only uint8 arrays over the page cache, so nothing is
    copied and the pages are touched by whichever thread uses the block, not
    by the reading thread. Each mapping goes away with its block, so memory
    is a few blocks, as when reading. A block still ends right after a
    separator or at the end of the input; a word longer than a whole block
    is yielded as its first ``MAX_WORD_BYTES + 1`` bytes and the separator
    after it (``iter_blocks``'s truncation). Compressed files, standard
    input and pipes are read through ``open_input`` (blocks are bytes).

    A ``FilePart`` is read the same way, from its first word boundary to its
    last; the bytes read count from its start.

    The file must not shrink while it is mapped (the OS would kill the
    process on touching a page that is gone); a shrink seen between blocks
    raises InputDataError.
    """
    if block_bytes < 1:
        raise UsageError(f"block size must be at least 1 byte, not {block_bytes}")
    if isinstance(inp, FilePart):
        yield from _part_blocks(inp, block_bytes)
        return
    if inp.kind in records.RECORD_KINDS:
        yield from _record_blocks(inp, block_bytes)
        return
    if inp.path != "-" and not inp.remote and inp.compression is None and _mappable(inp.path):
        with _open_plain(inp.path) as file:
            yield from _mapped_blocks(file, inp.path, os.fstat(file.fileno()).st_size, block_bytes)
        return
    with open_input(inp) as stream:
        for block in iter_blocks(stream, block_bytes, name=inp.path):
            yield block, stream.raw_bytes_read


def _record_blocks(inp: InputFile, block_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks of lines of a record input (``records.record_blocks``), opened as it needs."""
    if inp.kind == records.JSON_LINES:  # a stream, decompressed like text; opened afresh per pass
        yield from records.record_blocks(inp.kind, lambda: open_input(inp), inp.path, inp.size,
                                         inp.field, block_bytes)
        return
    try:
        if inp.remote:
            source = (remote.open_stream(inp.path) if inp.kind == records.ARROW_STREAM
                      else remote.open_file(inp.path))
        else:
            source = records.local_source(inp.kind, inp.path)
    except FileNotFoundError:
        raise MissingInputError(f"no such file or directory: {inp.path}") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {inp.path}: {exc.strerror or exc}") from None
    with source:
        try:
            yield from records.record_blocks(inp.kind, source, inp.path, inp.size, inp.field,
                                             block_bytes)
        except OSError as exc:
            if inp.remote:
                raise remote.translate(inp.path, exc) from None
            raise _read_error(inp.path, None, exc) from None


def _mappable(path: str) -> bool:
    """A regular file with a size (a FIFO must not be opened twice; procfs files report 0)."""
    try:
        st = os.stat(path)
    except OSError:
        return False  # open_input says what is wrong
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def _open_plain(path: str):
    try:
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise MissingInputError(f"no such file or directory: {path}") from None
    except OSError as exc:
        raise MissingInputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _part_blocks(part: FilePart, block_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    """``input_blocks`` of a part: its bounds moved to word boundaries, bytes read from there."""
    with _open_plain(part.path) as file:
        size = os.fstat(file.fileno()).st_size
        first, end = (_word_bound(file, part.path, size, b) for b in (part.start, part.stop))
        for block, read in _mapped_blocks(file, part.path, size, block_bytes, first, end):
            yield block, read - first


def _word_bound(file, path: str, size: int, at: int) -> int:
    """Where a part bound at byte ``at`` falls: just after the first separator at ``at - 1``
    or later (so a word straddling ``at`` stays whole, before it), 0 or the end of the file."""
    if at <= 0 or at >= size:
        return min(max(at, 0), size)
    return min(size, _next_separator_at(file, path, size, at - 1) + 1)


def _mapped_blocks(file, path: str, size: int, block_bytes: int, pos: int = 0,
                   last: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks of bytes ``pos`` to ``last`` (a word boundary; None: the end of the file)."""
    last = size if last is None else last
    while pos < last:
        stop = min(last, pos + block_bytes)
        window = _map(file, path, size, pos, stop)
        if stop == last:
            yield window, last
            return
        end = _last_separator_in(window)
        if end >= 0:
            yield window[:end + 1], pos + end + 1
            pos += end + 1
            continue
        # One word fills the whole block: keep its key bytes, skip to its end.
        del window
        sep = _next_separator_at(file, path, size, stop)
        head = bytes(_map(file, path, size, pos, min(sep, pos + MAX_WORD_BYTES + 1)))
        if sep < size:
            head += bytes(_map(file, path, size, sep, sep + 1))
        pos = min(size, sep + 1)
        yield head, pos


def _map(file, path: str, size: int, start: int, stop: int) -> np.ndarray:
    """Bytes [start, stop) of the file as a read-only array over a new mapping."""
    if os.fstat(file.fileno()).st_size < size:
        raise InputDataError(f"{path} shrank while it was being read: read it again when "
                             f"nothing is writing to it")
    base = start - start % mmap.ALLOCATIONGRANULARITY
    try:
        mapped = mmap.mmap(file.fileno(), stop - base, offset=base, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return np.frombuffer(mapped, np.uint8)[start - base:]


def _is_separator(window: np.ndarray) -> np.ndarray:
    """Which bytes of ``window`` are separators (a bool array)."""
    return (window == SPACE) | (window == LF) | (window == TAB) | (window == CR)


def _last_separator_in(window: np.ndarray) -> int:
    """Index of the last separator byte in the window, or -1; looks at the end first."""
    n = window.shape[0]
    span = 256
    while True:
        lo = max(0, n - span)
        tail = window[lo:]
        hits = np.flatnonzero(_is_separator(tail))
        if hits.shape[0]:
            return lo + int(hits[-1])
        if lo == 0:
            return -1
        n = lo
        span *= 16


def _next_separator_at(file, path: str, size: int, start: int) -> int:
    """Position of the first separator byte at or after ``start``, or ``size``."""
    step = 1 << 20
    while start < size:
        window = _map(file, path, size, start, min(size, start + step))
        hits = np.flatnonzero(_is_separator(window))
        if hits.shape[0]:
            return start + int(hits[0])
        start += window.shape[0]
    return size


def _last_separator(buf: bytes) -> int:
    return max(buf.rfind(sep) for sep in SEPARATOR_BYTES)


def _first_separator(buf: bytes) -> int:
    found = [i for i in (buf.find(sep) for sep in SEPARATOR_BYTES) if i >= 0]
    return min(found) if found else -1


# ---------------------------------------------------------------- words


def split_words(block: bytes) -> list[bytes]:
    """The words of a block, by the C word2vec rule (separators: space, tab, CR, LF).

    The plain-Python statement of the rule: counting and encoding use the
    Numba tokenizer of ``wordtable``, which the tests hold to this.
    """
    # bytes.split() is several times faster than the regex but also splits
    # on \x0b and \x0c; those are rare, so pay for exactness only when present.
    if b"\x0b" in block or b"\x0c" in block:
        return [w for w in _SEPARATOR_RUN.split(block) if w]
    return block.split()


def canonical_word(raw: bytes) -> str:
    """The vocabulary string for a word's raw bytes (rule in the module docstring)."""
    if len(raw) <= MAX_WORD_BYTES:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")
    cut = MAX_WORD_BYTES
    # raw[cut] is the first byte dropped. If it continues a multi-byte
    # character (10xxxxxx), step back to that character's lead byte (at most
    # 3 steps) and drop the whole character. If no lead byte is found the
    # bytes are not valid UTF-8 anyway and the plain cut is as good as any.
    back = cut
    while back > cut - 3 and raw[back] & 0xC0 == 0x80:
        back -= 1
    if raw[cut] & 0xC0 == 0x80 and raw[back] >= 0xC0:
        cut = back
    return raw[:cut].decode("utf-8", errors="replace")
