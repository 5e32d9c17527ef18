"""Numba kernels for the word2vec text format (``w2vfile.py`` reads the files).

Loaded only for text files: the binary format needs no compiled code, and
Numba costs a process about 0.5 s and 100 MB the first time it runs one.
"""

import numpy as np
from numba import njit

_NEWLINE = 10

# Exact float64 powers of ten: the range in which mantissa * 10**k (or / 10**k)
# is one correctly rounded operation on exact operands (Clinger's fast path),
# so the result is the float64 Python's float() gives for the same text.
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)
_MAX_EXACT_MANTISSA = 2 ** 53


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
def parse_number(buf, start, stop):
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
    # The fraction's digits, as the integer part's above (and counted towards the
    # exponent): written out, as this parser runs once per number of the file.
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
def scan_text(buf, pos, end, at_eof, dim, out, row0, max_rows, words, lengths, bounds,
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
                value, ok = parse_number(buf, token, p)
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
