"""Reading the original C tool's word2vec files fast, in bounded memory.

The formats: a header line ``WORDS DIM``, then one record per word, either
binary (the word's bytes, a space, DIM little-endian float32, and usually a
newline: the C tool writes one, gensim does not) or text (``word v1 ... vDIM``,
whitespace-separated, one line each). Files may be gzip, bzip2, xz or zstd
compressed; the compression and the format are recognised from the content,
never from the file's name.

``Word2VecReader`` streams a file through one buffer of ``BLOCK_BYTES`` and
writes the vectors straight into the caller's float32 matrix: for a binary
record a byte copy (a loop of ``bytes.find`` and one slice copy per record:
no compiled code, so no Numba start-up), for a text line the numbers parsed in
place by a Numba kernel (``w2vtext.py``). A block's words become Python
strings in one decode. Memory is the destination matrix, the words and the
buffer, whatever the file's size: no Python object per number, no copy of the
file, nothing memory-mapped (whose pages would count in the process's memory).
Every error names the file and the record (binary) or line (text) where the
file stops making sense.
"""

import os
import stat
import sys

import numpy as np

from . import compression
from .errors import InputDataError, MissingInputError

BLOCK_BYTES = 4 * 2**20
# A binary record's word is everything up to the next space: in a file whose
# header lies about DIM the "word" runs into vector bytes, and may never end.
MAX_WORD_BYTES = 1 << 16
# Records handed to one text-kernel call: bounds its per-call index arrays.
MAX_BLOCK_ROWS = 1 << 16

_WHITESPACE = b" \t\n\v\f\r"


def open_stream(path):
    """(binary stream of the file's decompressed content, compression name or None)."""
    try:
        raw = open(path, "rb")  # buffered: peek() works on pipes too
    except FileNotFoundError:
        raise MissingInputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise MissingInputError(f"{path} is a directory, not a word2vec file") from None
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        kind = compression.sniff(raw.peek(16)[:16])
        return compression.decompressed(raw, kind, path), kind
    except BaseException:
        raw.close()
        raise


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _decode_words(raw_words):
    """Byte strings as str, one decode for all: NUL-joined, decoded, split.

    Invalid UTF-8 becomes U+FFFD; NUL is never part of a UTF-8 sequence, so
    this is what decoding each word alone gives. A word that holds a NUL itself
    (a broken file) sends the block through the one-by-one path.
    """
    words = b"\0".join(raw_words).decode("utf-8", "replace").split("\0")
    if len(words) != len(raw_words):
        words = [w.decode("utf-8", "replace") for w in raw_words]
    return words


class Word2VecReader:
    """A word2vec file, opened: its header, then its records, block by block.

    ``header_count`` and ``dim`` are the header's; ``count`` the rows that
    will be read (``limit`` when smaller); ``binary`` the format found from
    the first record (or forced). ``read_into(matrix)`` fills the next rows of
    a float32 matrix and returns their words; ``rows_read`` counts them. Once
    the header's last record is read (no limit), only whitespace may follow.
    A context manager; ``close`` otherwise.
    """

    def __init__(self, path, binary=None, limit=None):
        self.path = str(path)
        if limit is not None and limit < 0:
            raise InputDataError(f"limit must be 0 or more, got {limit}")
        self.stream = None
        self.stream, self.compression = open_stream(self.path)
        try:
            self._buf = bytearray(BLOCK_BYTES)
            self._pos = self._end = 0
            self._eof = False
            self._offset = 0   # offset in the (decompressed) file of _buf[0]
            self._line = 1     # line number of the line starting at _pos (text)
            self._read_header()
            self.count = self.header_count if limit is None else min(limit, self.header_count)
            self.limited = self.count < self.header_count
            self.binary = self._detect_binary() if binary is None else bool(binary)
            self._check_size()
            # The longest record accepted: garbage without newlines or spaces is refused.
            self.max_record = (4 * self.dim + MAX_WORD_BYTES + 2 if self.binary
                               else 64 * (self.dim + 1) + MAX_WORD_BYTES)
            self.rows_read = 0
        except BaseException:
            self.close()
            raise

    # -- plumbing

    def close(self):
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _error(self, where, message):
        return InputDataError(f"{self.path}: {where}: {message}")

    def _at(self, pos):
        """Where ``_buf[pos]`` is in the file, for messages."""
        at = f"byte {self._offset + pos:,}"
        return at + " of the decompressed data" if self.compression else at

    def _fill(self):
        """Move the unread bytes to the buffer's front and read more; False at the end.

        The buffer doubles when one record fills it (up to twice max_record).
        """
        if self._eof:
            return False
        left = self._end - self._pos
        if self._pos > 0:
            self._buf[:left] = self._buf[self._pos:self._end]
            self._offset += self._pos
            self._pos, self._end = 0, left
        if self._end == len(self._buf):
            self._buf = self._buf + bytearray(len(self._buf))
        view = memoryview(self._buf)
        try:
            while self._end < len(self._buf):
                if hasattr(self.stream, "readinto"):
                    got = self.stream.readinto(view[self._end:])
                else:  # a stream with read() only
                    data = self.stream.read(len(self._buf) - self._end)
                    got = len(data)
                    view[self._end:self._end + got] = data
                if not got:
                    self._eof = True
                    break
                self._end += got
        except Exception as e:  # OSError, EOFError, lzma/zlib errors, ArrowInvalid
            what = f"{self.compression} data" if self.compression else "file"
            raise InputDataError(f"{self.path}: cannot read the {what} (after byte "
                                 f"{self._offset + self._end:,}): {e}") from None
        finally:
            view.release()
        return True

    def _head(self, most):
        """Up to ``most`` unread bytes, reading more while fewer are buffered."""
        while self._end - self._pos < most and self._fill():
            pass
        return bytes(self._buf[self._pos:min(self._end, self._pos + most)])

    # -- header and format

    def _read_header(self):
        head = self._head(4096)
        if not head:
            raise InputDataError(f"{self.path}: the file is empty, not a word2vec file")
        newline = head.find(b"\n")
        line = head[:newline] if newline >= 0 else head[:60]
        parts = line.split()
        try:
            count, dim = (int(p) for p in parts)
        except ValueError:
            count = dim = -1
        if newline < 0 or len(parts) != 2 or count < 0 or dim <= 0:
            shown = line[:60].decode("utf-8", "replace")
            raise self._error("line 1", "not a word2vec file: the first line should be "
                              f"'WORDS DIM', got {shown!r}")
        self.header_count, self.dim = count, dim
        self._pos += newline + 1
        self._line = 2

    def _detect_binary(self):
        """Text if the first record reads as a line of a word and numbers, else binary.

        Any count of numbers: a text file whose header has another dim is a text
        file with a wrong header (reported at its first line), not binary garbage.
        """
        if self.header_count == 0:
            return True
        head = self._head(64 * (self.dim + 1) + MAX_WORD_BYTES)
        parts = next((line.split() for line in head.split(b"\n") if line.strip()), [])
        return len(parts) < 2 or not all(_is_float(p) for p in parts[1:])

    def _check_size(self):
        """Refuse a header promising more than an (uncompressed) file can hold, at once."""
        if self.compression is not None:
            return
        try:
            st = os.fstat(self.stream.fileno())
        except (OSError, AttributeError, ValueError):
            return
        if not stat.S_ISREG(st.st_mode):  # a pipe: its size is unknown
            return
        size = st.st_size
        # The smallest record: an (empty) word and a space, then 4*DIM bytes
        # (binary) or DIM one-character numbers, each after a separator (text).
        smallest = 4 * self.dim + 1 if self.binary else 2 * self.dim + 2
        needed = self._offset + self._pos + self.count * smallest
        if needed > size:
            kind = "binary" if self.binary else "text"
            raise self._error("line 1", f"the header promises {self.header_count:,} words of "
                              f"dim {self.dim}, which need at least {needed:,} bytes in the "
                              f"{kind} format, but the file has {size:,}: the header is "
                              "wrong or the file is truncated")

    # -- records

    def new_matrix(self):
        """An uninitialised float32 matrix for all the rows to read (count x dim)."""
        try:
            return np.empty((self.count, self.dim), dtype=np.float32)
        except (MemoryError, ValueError):
            gb = self.count * self.dim * 4 / 1e9
            raise self._error("line 1", f"the header promises {self.count:,} words of dim "
                              f"{self.dim} ({gb:,.1f} GB of vectors), more memory than "
                              "there is: the header is wrong, or read fewer rows "
                              "(limit)") from None

    def read_into(self, out):
        """Fill ``out[:k]`` (float32, C order, DIM columns) with the next k records.

        k = min(len(out), rows left to read); returns the k words.
        """
        if (out.dtype != np.float32 or out.ndim != 2 or out.shape[1] != self.dim
                or not out.flags.c_contiguous):
            raise ValueError("read_into needs a C-ordered float32 matrix with dim columns")
        want = min(out.shape[0], self.count - self.rows_read)
        if self.binary:
            words = self._read_binary(out, want)
        else:
            words = self._read_text(out, want)
        self.rows_read += want
        if self.rows_read == self.count and not self.limited:
            self._check_end()
        return words

    def _need_more(self, record, pos):
        """The buffer holds no further whole record at ``pos``: read more, or fail."""
        if self._eof:
            where = f"record {record + 1:,}" if self.binary else f"line {self._line:,}"
            hint = f" (or the header's dim, {self.dim}, is wrong)" if self.binary else ""
            raise self._error(where, f"truncated: the header promises {self.header_count:,} "
                              f"words, the file ends after {record:,} (at {self._at(pos)})"
                              f"{hint}")
        if pos == 0 and self._end == len(self._buf) and len(self._buf) >= 2 * self.max_record:
            where = f"record {record + 1:,}" if self.binary else f"line {self._line:,}"
            raise self._error(where, f"no record ends within {len(self._buf):,} bytes (at "
                              f"{self._at(pos)}): not a word2vec "
                              f"{'binary' if self.binary else 'text'} file, or its header "
                              "is wrong")
        self._fill()

    def _read_binary(self, out, want):
        """The next ``want`` binary records into out[:want]; their words."""
        if want == 0:
            return []
        record = 4 * self.dim
        flat = memoryview(out).cast("B")
        raw_words = []
        append = raw_words.append
        got = 0
        while got < want:
            buf, pos, end = self._buf, self._pos, self._end
            view = memoryview(buf)
            find = buf.find
            last_space = end - record - 1  # a word must end by here for its vector to fit
            o = got * record
            try:
                while got < want:
                    while pos < end and buf[pos] == 10:  # the C tool's record separator
                        pos += 1
                    space = find(b" ", pos, min(end, pos + MAX_WORD_BYTES + 1))
                    if space < 0 or space > last_space:
                        break
                    append(buf[pos:space])
                    start = space + 1
                    flat[o:o + record] = view[start:start + record]
                    o += record
                    pos = start + record
                    got += 1
            finally:
                view.release()
            self._pos = pos
            if got == want:
                break
            if end - pos > MAX_WORD_BYTES and find(b" ", pos, pos + MAX_WORD_BYTES + 1) < 0:
                raise self._error(f"record {self.rows_read + got + 1:,}", "no word ends within "
                                  f"{MAX_WORD_BYTES:,} bytes (at {self._at(pos)}): not a "
                                  f"word2vec binary file, or the header's dim ({self.dim}) "
                                  "is wrong")
            self._need_more(self.rows_read + got, pos)
        flat.release()
        if sys.byteorder == "big":
            out[:want].byteswap(inplace=True)
        return _decode_words(raw_words)

    def _read_text(self, out, want):
        """The next ``want`` text records into out[:want]; their words."""
        from .w2vtext import scan_text
        words = []
        got = 0
        lengths = np.empty(MAX_BLOCK_ROWS, dtype=np.int64)
        bounds = np.empty((MAX_BLOCK_ROWS, 3), dtype=np.int64)
        slow = np.zeros(MAX_BLOCK_ROWS, dtype=np.bool_)
        while got < want:
            max_rows = min(want - got, MAX_BLOCK_ROWS)
            buf = np.frombuffer(self._buf, dtype=np.uint8)
            word_bytes = np.empty(self._end - self._pos + max_rows, dtype=np.uint8)
            n, pos, lines, used, _, status, fields = scan_text(
                buf, self._pos, self._end, self._eof, self.dim, out, got, max_rows,
                word_bytes, lengths, bounds, slow)
            if n:
                data = word_bytes[:used].tobytes()
                starts = np.concatenate(([0], np.cumsum(lengths[:n] + 1)[:-1])).tolist()
                words.extend(_decode_words([data[s:s + k] for s, k in
                                            zip(starts, lengths[:n].tolist())]))
                if slow[:n].any():
                    self._parse_slow_rows(out, got, n, bounds, slow)
            if status:
                got_fields = fields - 1
                raise self._error(f"line {self._line + lines - 1:,}", f"expected a word and "
                                  f"{self.dim} numbers (the header's dim), got {got_fields} "
                                  f"number{'' if got_fields == 1 else 's'}")
            del buf
            self._pos = pos
            self._line += lines
            got += n
            if got < want and n < max_rows:
                self._need_more(self.rows_read + got, self._pos)
        return words

    def _parse_slow_rows(self, out, row0, n, bounds, slow):
        """Rows with numbers the kernel leaves to Python (nan, inf, many digits): float()."""
        for i in np.flatnonzero(slow[:n]):
            start, numbers, end = (int(x) for x in bounds[i])
            fields = bytes(self._buf[numbers:end]).split()
            try:
                with np.errstate(over="ignore"):  # beyond float32: inf, as in the kernel
                    out[row0 + i] = np.array([float(f) for f in fields], dtype=np.float64)
            except ValueError:
                line = self._line + self._buf.count(b"\n", self._pos, start)
                bad = next(f for f in fields if not _is_float(f))
                raise self._error(f"line {line:,}", f"{bad[:40].decode('utf-8', 'replace')!r}"
                                  " is not a number") from None

    def _check_end(self):
        """After the header's last record only whitespace may follow; else the header lies."""
        while True:
            rest = bytes(self._buf[self._pos:self._end])
            stripped = rest.lstrip(_WHITESPACE)
            if stripped:
                first = self._pos + len(rest) - len(stripped)
                if self.binary:
                    where = f"record {self.header_count + 1:,}"
                else:
                    line = self._line + self._buf.count(b"\n", self._pos, first)
                    where = f"line {line:,}"
                raise self._error(where, f"the header promises {self.header_count:,} words "
                                  f"but more data follows (at {self._at(first)}): the header's "
                                  "word count or dim is wrong (a limit reads only the first "
                                  "rows)")
            self._pos = self._end
            if not self._fill():
                return


def read_header(path):
    """(words, dim, binary) from a word2vec file's header and first record."""
    with Word2VecReader(path, limit=0) as reader:
        return reader.header_count, reader.dim, reader.binary


def read_word2vec(path, binary=None, limit=None):
    """(words, float32 matrix) of a word2vec file: its first ``limit`` rows, or all."""
    with Word2VecReader(path, binary=binary, limit=limit) as reader:
        matrix = reader.new_matrix()
        words = reader.read_into(matrix)
    return words, matrix
