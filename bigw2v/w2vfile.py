"""Reading the original C tool's word2vec files fast, in bounded memory.

The formats: a header line ``WORDS DIM``, then one record per word, either
binary (the word's bytes, a space, DIM little-endian float32, and usually a
newline: the C tool writes one, gensim does not) or text (``word v1 ... vDIM``,
whitespace-separated, one line each). Files may be gzip, bzip2, xz or zstd
compressed; the compression and the format are recognised from the content,
never from the file's name.

``Word2VecReader`` streams a file in blocks of ``BLOCK_BYTES``: a Numba kernel
walks the records of a block and writes the vectors straight into the caller's
float32 matrix (binary: a byte copy; text: the numbers parsed in place) and the
words, NUL-joined, into a buffer that becomes the block's Python strings in one
decode. Memory is the destination matrix, the words and two buffers, whatever
the file's size: no Python object per number, no copy of the file, nothing
memory-mapped (whose pages would count in the process's memory). Every error
names the file and the record (binary) or line (text) where it stops making
sense.
"""

import os
import sys

import numpy as np
from numba import njit

from .errors import InputDataError, MissingInputError

BLOCK_BYTES = 16 * 2**20
# A binary record's word is everything up to the next space: in a file whose
# header lies about DIM the "word" runs into vector bytes, and may never end.
MAX_WORD_BYTES = 1 << 16
# Records handed to one kernel call: bounds the per-call index arrays.
MAX_BLOCK_ROWS = 1 << 16

_NEWLINE = 10
_SPACE = 32

# Exact float64 powers of ten: the range in which mantissa * 10**k (or / 10**k)
# is one correctly rounded operation on exact operands (Clinger's fast path),
# so the result is the float64 Python's float() gives for the same text.
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)
_MAX_EXACT_MANTISSA = 2 ** 53


# ---------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _is_space(b):
    # ASCII whitespace as bytes.split() sees it: space, \t \n \v \f \r.
    return b == 32 or (9 <= b <= 13)


@njit(cache=True, inline="always")
def _copy_word(buf, start, stop, words, at):
    """Append buf[start:stop] and a NUL to ``words`` at ``at``; (new end, it holds a NUL)."""
    nul = False
    for k in range(start, stop):
        b = buf[k]
        nul = nul or b == 0
        words[at] = b
        at += 1
    words[at] = 0
    return at + 1, nul


@njit(cache=True)
def _scan_binary(buf, pos, end, at_eof, dim, out, row0, max_rows, words, lengths):
    """Copy the binary records of ``buf[pos:end]`` into rows ``row0...`` of ``out``.

    ``out`` is the destination matrix viewed as bytes (rows of 4 * dim). Stops
    after ``max_rows`` records or before a record that does not end in the
    buffer. The words go to ``words``, each followed by a NUL; ``lengths[i]``
    is the length of record i's word in bytes. Returns (records, new position, word bytes,
    a word holds a NUL, status): status 0 fine, 1 a word longer than
    MAX_WORD_BYTES, 2 the data ends inside a record (only ``at_eof``).
    """
    record = 4 * dim
    n = 0
    at = 0
    nul = False
    while n < max_rows:
        p = pos
        while p < end and buf[p] == _NEWLINE:  # the C tool's record separator
            p += 1
        stop = min(end, p + MAX_WORD_BYTES)
        q = p
        while q < stop and buf[q] != _SPACE:
            q += 1
        if q == stop and q - p >= MAX_WORD_BYTES:
            return n, p, at, nul, 1
        if q == stop or q + 1 + record > end:
            return n, p, at, nul, 2 if at_eof else 0
        at, has_nul = _copy_word(buf, p, q, words, at)
        nul = nul or has_nul
        row = out[row0 + n]
        src = q + 1
        for k in range(record):
            row[k] = buf[src + k]
        pos = src + record
        lengths[n] = q - p
        n += 1
    return n, pos, at, nul, 0


@njit(cache=True)
def _parse_number(buf, start, stop):
    """(value, ok) for the decimal number ``buf[start:stop]``.

    ok is False when the text is not a plain decimal (nan, inf, garbage) or
    is outside the range where this is exact (more than 2**53 in its digits,
    a power of ten past 1e+-22): the caller parses those with Python's float().
    """
    i = start
    negative = False
    if i < stop and (buf[i] == 45 or buf[i] == 43):  # - +
        negative = buf[i] == 45
        i += 1
    mantissa = 0
    digits = 0
    exponent = 0
    seen = False
    while i < stop and 48 <= buf[i] <= 57:
        seen = True
        if mantissa > 0 or buf[i] != 48:
            if digits >= 18:
                return 0.0, False
            mantissa = mantissa * 10 + (buf[i] - 48)
            digits += 1
        i += 1
    if i < stop and buf[i] == 46:  # .
        i += 1
        while i < stop and 48 <= buf[i] <= 57:
            seen = True
            if mantissa > 0 or buf[i] != 48:
                if digits >= 18:
                    return 0.0, False
                mantissa = mantissa * 10 + (buf[i] - 48)
                digits += 1
            exponent -= 1
            i += 1
    if not seen:
        return 0.0, False
    if i < stop and (buf[i] == 101 or buf[i] == 69):  # e E
        i += 1
        exp_negative = False
        if i < stop and (buf[i] == 45 or buf[i] == 43):
            exp_negative = buf[i] == 45
            i += 1
        if i == stop:
            return 0.0, False
        e = 0
        while i < stop and 48 <= buf[i] <= 57:
            if e < 100000:
                e = e * 10 + (buf[i] - 48)
            i += 1
        exponent += -e if exp_negative else e
    if i != stop:
        return 0.0, False
    if mantissa == 0:
        return -0.0 if negative else 0.0, True
    if mantissa >= _MAX_EXACT_MANTISSA:
        return 0.0, False
    value = float(mantissa)
    if 0 <= exponent <= 22:
        value = value * _POW10[exponent]
    elif -22 <= exponent < 0:
        value = value / _POW10[-exponent]
    else:
        return 0.0, False
    return -value if negative else value, True


@njit(cache=True)
def _scan_text(buf, pos, end, at_eof, dim, out, row0, max_rows, words, lengths, bounds,
               slow):
    """Parse the text records (lines) of ``buf[pos:end]`` into rows ``row0...`` of ``out``.

    Only complete lines are taken (at the end of the file the last one may
    lack its newline); blank lines are skipped. Words go to ``words`` as in
    ``_scan_binary``; ``bounds[i]`` is (line start, numbers start, line end)
    of record i and ``slow[i]`` says a number of it needs Python's float().
    Returns (records, new position, lines consumed, word bytes, a word holds a
    NUL, status, fields): status 0 fine, 1 the last line consumed has
    ``fields`` fields instead of DIM + 1.
    """
    n = 0
    lines = 0
    at = 0
    nul = False
    while n < max_rows and pos < end:
        line_end = pos
        while line_end < end and buf[line_end] != _NEWLINE:
            line_end += 1
        if line_end == end and not at_eof:
            break
        lines += 1
        next_pos = line_end + 1
        p = pos
        while p < line_end and _is_space(buf[p]):
            p += 1
        if p == line_end:  # a blank line
            pos = next_pos
            continue
        word_start = p
        while p < line_end and not _is_space(buf[p]):
            p += 1
        word_end = p
        row = out[row0 + n]
        fields = 1
        needs_python = False
        while True:
            while p < line_end and _is_space(buf[p]):
                p += 1
            if p == line_end:
                break
            token = p
            while p < line_end and not _is_space(buf[p]):
                p += 1
            if fields <= dim:
                value, ok = _parse_number(buf, token, p)
                if ok:
                    row[fields - 1] = value
                else:
                    needs_python = True
            fields += 1
        if fields != dim + 1:
            return n, next_pos, lines, at, nul, 1, fields
        at, has_nul = _copy_word(buf, word_start, word_end, words, at)
        nul = nul or has_nul
        lengths[n] = word_end - word_start
        bounds[n, 0] = pos
        bounds[n, 1] = word_end
        bounds[n, 2] = line_end
        slow[n] = needs_python
        pos = next_pos
        n += 1
    return n, pos, lines, at, nul, 0, 0


# ---------------------------------------------------------------- files


def open_stream(path):
    """(binary stream of the file's decompressed content, compression name or None)."""
    from .corpus import sniff_compression
    try:
        raw = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise MissingInputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise MissingInputError(f"{path} is a directory, not a word2vec file") from None
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        head = raw.read(16)
        raw.seek(0)
        compression = sniff_compression(head)
        if compression is None:
            return raw, None
        if compression == "gz":
            import gzip
            return gzip.GzipFile(fileobj=raw, mode="rb"), compression
        if compression == "bz2":
            import bz2
            return bz2.BZ2File(raw, mode="rb"), compression
        if compression == "xz":
            import lzma
            return lzma.LZMAFile(raw, mode="rb"), compression
        import pyarrow as pa
        return pa.CompressedInputStream(raw, "zstd"), compression
    except BaseException:
        raw.close()
        raise


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


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
            self._buf = np.empty(BLOCK_BYTES, dtype=np.uint8)
            self._words = np.empty(BLOCK_BYTES + MAX_BLOCK_ROWS, dtype=np.uint8)
            self._pos = self._end = 0
            self._eof = False
            self._offset = 0   # offset in the (decompressed) file of _buf[0]
            self._line = 1     # line number of the line starting at _pos (text)
            self._read_header()
            self.count = self.header_count if limit is None else min(limit, self.header_count)
            self.limited = self.count < self.header_count
            self.binary = self._detect_binary() if binary is None else bool(binary)
            self._check_size()
            # The longest record we accept, for refusing garbage without newlines or spaces.
            self.max_record = (4 * self.dim + MAX_WORD_BYTES + 2 if self.binary
                               else 64 * (self.dim + 1) + MAX_WORD_BYTES)
            self.rows_read = 0
            self._lengths = np.empty(MAX_BLOCK_ROWS, dtype=np.int64)
            self._bounds = np.empty((MAX_BLOCK_ROWS, 3), dtype=np.int64)
            self._slow = np.zeros(MAX_BLOCK_ROWS, dtype=np.bool_)
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

    def _fill(self):
        """Move the unread bytes to the buffer's front and read more; False at the end."""
        if self._eof:
            return False
        left = self._end - self._pos
        if self._pos > 0:
            self._buf[:left] = self._buf[self._pos:self._end]
            self._offset += self._pos
            self._pos, self._end = 0, left
        if self._end == len(self._buf):  # one record longer than the buffer
            bigger = np.empty(2 * len(self._buf), dtype=np.uint8)
            bigger[:self._end] = self._buf[:self._end]
            self._buf = bigger
            self._words = np.empty(len(bigger) + MAX_BLOCK_ROWS, dtype=np.uint8)
        view = memoryview(self._buf)
        try:
            while self._end < len(self._buf):
                if hasattr(self.stream, "readinto"):
                    got = self.stream.readinto(view[self._end:])
                else:
                    data = self.stream.read(len(self._buf) - self._end)
                    got = len(data)
                    self._buf[self._end:self._end + got] = np.frombuffer(data, np.uint8)
                if not got:
                    self._eof = True
                    break
                self._end += got
        except InputDataError:
            raise
        except Exception as e:  # OSError, EOFError, lzma/zlib errors, ArrowInvalid
            what = f"{self.compression} data" if self.compression else "file"
            raise InputDataError(f"{self.path}: cannot read the {what} (after byte "
                                 f"{self._offset + self._end:,}): {e}") from None
        return True

    def _head(self, most):
        """Up to ``most`` unread bytes, reading more while fewer are buffered."""
        while self._end - self._pos < most and self._fill():
            pass
        return self._buf[self._pos:min(self._end, self._pos + most)].tobytes()

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
        """Text if the first record reads as a line of a word and DIM numbers, else binary."""
        if self.header_count == 0:
            return True
        head = self._head(64 * (self.dim + 1) + MAX_WORD_BYTES)
        newline = head.find(b"\n")
        parts = (head[:newline] if newline >= 0 else head).split()
        return len(parts) != self.dim + 1 or not all(_is_float(p) for p in parts[1:])

    def _check_size(self):
        """Refuse a header promising more than an (uncompressed) file can hold, at once."""
        if self.compression is not None:
            return
        try:
            size = os.fstat(self.stream.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            return
        # The smallest record: a one-byte word and a space, then 4*DIM bytes
        # (binary) or DIM one-character numbers, each after a separator (text).
        smallest = 4 * self.dim + 2 if self.binary else 2 * self.dim + 2
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
        words = []
        got = 0
        while got < want:
            max_rows = min(want - got, MAX_BLOCK_ROWS)
            if self.binary:
                n, pos, used, nul, status = _scan_binary(
                    self._buf, self._pos, self._end, self._eof, self.dim, out.view(np.uint8),
                    got, max_rows, self._words, self._lengths)
                lines, fields = 0, 0
            else:
                n, pos, lines, used, nul, status, fields = _scan_text(
                    self._buf, self._pos, self._end, self._eof, self.dim, out, got, max_rows,
                    self._words, self._lengths, self._bounds, self._slow)
            if n:
                words.extend(self._decode_words(n, used, nul))
                if not self.binary and self._slow[:n].any():
                    self._parse_slow_rows(out, got, n)
            if status:
                self._fail(status, self.rows_read + got + n, pos, self._line + lines - 1,
                           fields)
            self._pos = pos
            self._line += lines
            got += n
            if got < want and n < max_rows:  # the buffer holds no further whole record
                if self._eof:
                    self._fail(2, self.rows_read + got, self._pos, self._line, 0)
                if self._pos == 0 and self._end == len(self._buf) \
                        and len(self._buf) >= 2 * self.max_record:
                    self._fail(3, self.rows_read + got, self._pos, self._line, 0)
                self._fill()
        if self.binary and sys.byteorder == "big":
            out[:got].byteswap(inplace=True)
        self.rows_read += got
        if self.rows_read == self.count and not self.limited:
            self._check_end()
        return words

    def _decode_words(self, n, used, nul):
        """The block's n words as strings: one decode of the NUL-joined bytes.

        Invalid UTF-8 becomes U+FFFD (NUL is never part of a UTF-8 sequence,
        so this is what decoding each word alone gives). When a word holds a
        NUL itself, each word is decoded alone, cut by its length.
        """
        data = self._words[:used - 1].tobytes()
        if not nul:
            return data.decode("utf-8", "replace").split("\0")
        starts = np.concatenate(([0], np.cumsum(self._lengths[:n] + 1)[:-1])).tolist()
        return [data[s:s + k].decode("utf-8", "replace")
                for s, k in zip(starts, self._lengths[:n].tolist())]

    def _parse_slow_rows(self, out, row0, n):
        """Rows with numbers the kernel leaves to Python (nan, inf, many digits): float()."""
        for i in np.flatnonzero(self._slow[:n]):
            start, numbers, end = (int(x) for x in self._bounds[i])
            fields = self._buf[numbers:end].tobytes().split()
            try:
                out[row0 + i] = np.array([float(f) for f in fields], dtype=np.float64)
            except ValueError:
                line = self._line + self._buf[self._pos:start].tobytes().count(b"\n")
                bad = next(f for f in fields if not _is_float(f))
                raise self._error(f"line {line:,}", f"{bad[:40].decode('utf-8', 'replace')!r}"
                                  " is not a number") from None

    def _fail(self, status, record, pos, line, fields):
        """Raise the error for a kernel's status (3: a record longer than max_record)."""
        at = f"byte {self._offset + pos:,}"
        if self.compression:
            at += " of the decompressed data"
        where = f"record {record + 1:,}" if self.binary else f"line {line:,}"
        if status == 1 and self.binary:
            raise self._error(where, f"no word ends within {MAX_WORD_BYTES:,} bytes (at {at}): "
                              "not a word2vec binary file, or the header's dim "
                              f"({self.dim}) is wrong")
        if status == 1:
            got = fields - 1
            raise self._error(where, f"expected a word and {self.dim} numbers (the header's "
                              f"dim), got {got} number{'' if got == 1 else 's'}")
        if status == 3:
            raise self._error(where, f"no record ends within {len(self._buf):,} bytes (at "
                              f"{at}): not a word2vec {'binary' if self.binary else 'text'} "
                              "file, or its header is wrong")
        raise self._error(where, f"truncated: the header promises {self.header_count:,} "
                          f"words, the file ends after {record:,} (at {at})")

    def _check_end(self):
        """After the header's last record only whitespace may follow; else the header lies."""
        while True:
            rest = self._buf[self._pos:self._end]
            data = np.flatnonzero(~((rest == 32) | ((rest >= 9) & (rest <= 13))))
            if len(data):
                first = self._pos + int(data[0])
                if self.binary:
                    where = f"record {self.header_count + 1:,}"
                else:
                    newlines = self._buf[self._pos:first].tobytes().count(b"\n")
                    where = f"line {self._line + newlines:,}"
                raise self._error(where, f"the header promises {self.header_count:,} words "
                                  "but more data follows (at byte "
                                  f"{self._offset + first:,}): the header is wrong (a "
                                  "limit reads only the first rows)")
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
