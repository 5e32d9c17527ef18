"""A hash table of words kept as raw bytes, and the Numba kernels that fill and query it.

Counting and encoding both cut blocks of text into words (the C tool's rule,
see ``corpus``) and look every word up in a table. Done with ``bytes.split``
and a dict, that costs a Python object and a few dozen interpreter
instructions per word; here one Numba pass over a block's bytes finds the
words and probes the table, allocates nothing per word, and releases the
GIL, so threads can work on different blocks at once.

The table (``WordTable``) is a handful of NumPy arrays, passed explicitly to
the kernels:

``slots`` int32 [capacity]
    Open addressing with linear probing; capacity is a power of two and the
    table is grown (doubled, rehashed) before it is half full. -1 marks an
    empty slot, anything else is a row.
``hashes`` uint64 [rows]
    The 64-bit hash of each row's key (``key_hash``: the key's bytes in
    8-byte chunks, each folded in by a multiply and a shift, so the scanner
    hashes a word as it reads it, 8 bytes at a time). Compared before the
    bytes, so a probe almost never touches the bytes of a different word.
    Mixed (MurmurHash3's finaliser), its low bits pick the slot and its high
    bits the Parquet partition of the word (``partition_of``).
``offsets`` int64 [rows + 1], ``arena`` uint8
    Row r's key is ``arena[offsets[r]:offsets[r + 1]]``: the layout of an
    Arrow large-binary array, so the words reach Parquet without one Python
    object each.
``counts`` int64 [rows]
    How often each word was seen (counting); unused by a lookup-only table.

Arrays are allocated with room to spare and grown by doubling; ``n_words``
says how many rows are in use. Rows are numbered in insertion order.

Keys. A word's key is its raw bytes cut to ``MAX_WORD_BYTES + 1``: two words
that agree on those bytes have the same canonical string
(``corpus.canonical_word`` never looks further), so counting them as one key
early is exact and bounds a key's size.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from . import corpus, normalize
from .prefetch import prefetch

KEY_BYTES = corpus.MAX_WORD_BYTES + 1
UNRESOLVED = np.uint32(0xFFFFFFFF)  # an encode placeholder for a word only Python can canonicalise

_SEED = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_U64 = np.uint64
_SPACE, _TAB, _CR, _LF = corpus.SPACE, corpus.TAB, corpus.CR, corpus.LF
# Each separator byte repeated in all 8 bytes of a word.
_SPACES, _TABS, _CRS, _LFS = (_ONES * np.uint64(c) for c in (_SPACE, _TAB, _CR, _LF))


# ---------------------------------------------------------------- small pieces


@intrinsic
def _load8(typingctx, data, i):
    """The 8 bytes data[i:i+8] (uint8, C-contiguous) as a little-endian uint64; caller checks bounds.

    Numba has no unaligned wide load; eight byte loads and shifts cost the
    scanner and the key comparison most of their time.
    """
    if not (isinstance(data, types.Array) and data.dtype == types.uint8 and data.ndim == 1
            and data.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.bitcast(builder.gep(array.data, [index]), ir.IntType(64).as_pointer())
        value = builder.load(address, align=1)
        return builder.bswap(value) if sys.byteorder == "big" else value

    return types.uint64(data, i), codegen


@intrinsic
def _store8(typingctx, data, i, value):
    """data[i:i+8] = value's 8 bytes, little-endian (uint8, C-contiguous); caller checks bounds."""
    if not (isinstance(data, types.Array) and data.dtype == types.uint8 and data.ndim == 1
            and data.layout == "C" and data.mutable):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.bitcast(builder.gep(array.data, [index]), ir.IntType(64).as_pointer())
        value = context.cast(builder, args[2], signature.args[2], types.uint64)
        builder.store(builder.bswap(value) if sys.byteorder == "big" else value, address, align=1)
        return context.get_dummy_value()

    return types.void(data, i, value), codegen


@njit(cache=True, inline="always")
def _is_separator(c):
    return c == _SPACE or c == _LF or c == _TAB or c == _CR


@njit(cache=True, inline="always")
def _zero_bytes(x):
    # The high bit of each zero byte of x is set, and none below the lowest
    # zero byte is (bytes above it may be false positives, never read here).
    return (x - _ONES) & ~x & _HIGHS


@njit(cache=True, inline="always")
def _separator_bits(x):
    """Nonzero iff one of x's 8 bytes is a separator; its trailing zeros / 8 = bytes before the first."""
    return (_zero_bytes(x ^ _SPACES) | _zero_bytes(x ^ _TABS) | _zero_bytes(x ^ _CRS)
            | _zero_bytes(x ^ _LFS))


@njit(cache=True, inline="always")
def _low_bytes(x, k):
    """x with only its k lowest bytes kept (0 <= k < 8)."""
    return x & ((_U64(1) << _U64(8 * k)) - _U64(1))


@njit(cache=True, inline="always")
def _step(h, chunk):
    # One 8-byte chunk of a key into the hash (a bijection of the chunk for a
    # given h, so same-length keys of up to 8 bytes never collide).
    h = (h ^ chunk) * _MIX1
    return h ^ (h >> _U64(32))


@njit(cache=True, inline="always")
def _mixed(h):
    # MurmurHash3's finaliser: every output bit depends on every input bit,
    # so the low bits (slot) and high bits (partition) are both well spread.
    h = (h ^ (h >> _U64(33))) * _MIX1
    h = (h ^ (h >> _U64(33))) * _MIX2
    return h ^ (h >> _U64(33))


@njit(cache=True, inline="always")
def _slot_of(h, mask):
    return np.int64(_mixed(h) & _U64(mask))


@njit(cache=True, inline="always")
def _scan_word(block, start, n):
    """The word that starts at block[start]: (key length, end of the word, hash of the key).

    The key is the word's first KEY_BYTES bytes; bytes beyond it are skipped
    (they cannot change the canonical word). Reads 8 bytes at a time while 8
    remain in the block; the hash is ``key_hash`` of the key.
    """
    h = _SEED
    i = start
    key_end = start + KEY_BYTES
    while True:
        if i + 8 <= n:
            chunk = _load8(block, i)
            bits = _separator_bits(chunk)
            if bits != 0:
                k = np.int64(trailing_zeros(bits)) >> 3
                ended = True
            else:
                k = 8
                ended = False
        else:
            chunk = _U64(0)
            k = 0
            while i + k < n and not _is_separator(block[i + k]):
                chunk |= _U64(block[i + k]) << _U64(8 * k)
                k += 1
            ended = True
        if i + k >= key_end:
            # The key ends in this chunk; the rest of the word is skipped.
            take = key_end - i
            h = _step(h, chunk if take == 8 else _low_bytes(chunk, take))
            i = key_end
            while i < n and not _is_separator(block[i]):
                i += 1
            return KEY_BYTES, i, h ^ _U64(KEY_BYTES)
        if k > 0:
            h = _step(h, chunk if k == 8 else _low_bytes(chunk, k))
        i += k
        if ended:
            length = i - start
            return length, i, h ^ _U64(length)


@njit(cache=True)
def key_hash(data, start, stop):
    """The hash of key data[start:stop] (uint8): its bytes in little-endian 8-byte chunks,
    the last one zero-padded, folded by ``_step`` from a fixed seed, xor the length."""
    h = _SEED
    i = start
    while i < stop:
        chunk = _U64(0)
        for k in range(min(8, stop - i)):
            chunk |= _U64(data[i + k]) << _U64(8 * k)
        h = _step(h, chunk)
        i += 8
    return h ^ _U64(stop - start)


@njit(cache=True, inline="always")
def _same_key(data, start, length, arena, offsets, row):
    lo = offsets[row]
    if offsets[row + 1] - lo != length:
        return False
    k = 0
    while length - k >= 8:
        if _load8(data, start + k) != _load8(arena, lo + k):
            return False
        k += 8
    if k == length:
        return True
    if start + k + 8 <= data.shape[0] and lo + k + 8 <= arena.shape[0]:
        return _low_bytes(_load8(data, start + k) ^ _load8(arena, lo + k), length - k) == 0
    for j in range(k, length):
        if arena[lo + j] != data[start + j]:
            return False
    return True


@njit(cache=True)
def _find(data, start, length, h, slots, hashes, offsets, arena):
    """The row of key data[start:start+length] with hash h, or -(slot + 1) of the empty slot where it would go."""
    mask = slots.shape[0] - 1
    slot = _slot_of(h, mask)
    while True:
        row = slots[slot]
        if row < 0:
            return -(slot + 1)
        if hashes[row] == h and _same_key(data, start, length, arena, offsets, row):
            return row
        slot = (slot + 1) & mask


@njit(cache=True)
def _rehashed(capacity, hashes, n_words):
    slots = np.full(capacity, -1, np.int32)
    mask = capacity - 1
    for row in range(n_words):
        slot = _slot_of(hashes[row], mask)
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = row
    return slots


@njit(cache=True)
def grown(a, need):
    """``a`` copied into an array of at least ``need`` items (doubling)."""
    size = max(a.shape[0], 16)
    while size < need:
        size *= 2
    out = np.empty(size, a.dtype)
    out[:a.shape[0]] = a
    return out


@njit(cache=True)
def is_utf8(data, start, stop):
    """Whether data[start:stop] is well-formed UTF-8 (Unicode table 3-7, Python's strict decoder)."""
    i = start
    while i < stop:
        c = data[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            need = 1
        elif c == 0xE0:
            need, lo = 2, 0xA0
        elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
            need = 2
        elif c == 0xED:
            need, hi = 2, 0x9F  # no surrogates
        elif c == 0xF0:
            need, lo = 3, 0x90
        elif 0xF1 <= c <= 0xF3:
            need = 3
        elif c == 0xF4:
            need, hi = 3, 0x8F  # nothing above U+10FFFF
        else:
            return False
        if i + need >= stop:
            return False
        if not lo <= data[i + 1] <= hi:
            return False
        for k in range(2, need + 1):
            if not 0x80 <= data[i + k] <= 0xBF:
                return False
        i += need + 1
    return True


# ---------------------------------------------------------------- normalisation (normalize.py)

_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_CASE = np.uint64(0x2020202020202020)
_UNDERSCORES = _ONES * np.uint64(0x5F)


@njit(cache=True, inline="always")
def _ascii_between(x, lo, hi):
    """The high bit of each byte of x in lo..hi; x's bytes must all be below 0x80."""
    return (x + _ONES * _U64(0x80 - lo)) & ~(x + _ONES * _U64(0x7F - hi)) & _HIGHS


@njit(cache=True, inline="always")
def _equal_bytes(x, pattern):
    """The high bit of each byte of x equal to pattern's byte (exact for every byte)."""
    t = x ^ pattern
    return ~(((t & _LOW7) + _LOW7) | t | _LOW7)


@njit(cache=True, inline="always")
def _separator_length(block, i, n, two, three_rows, three):
    """How many bytes of the multi-byte separator at block[i] (0: none)."""
    c = block[i]
    if c < 0xE0:
        if c >= 0xC0 and i + 1 < n:
            b1 = block[i + 1]
            if 0x80 <= b1 <= 0xBF and two[c - 0xC0, b1 - 0x80]:
                return 2
        return 0
    if c < 0xF0 and i + 2 < n:
        b1 = block[i + 1]
        b2 = block[i + 2]
        if 0x80 <= b1 <= 0xBF and 0x80 <= b2 <= 0xBF:
            row = three_rows[c - 0xE0, b1 - 0x80]
            if row >= 0 and three[row, b2 - 0x80]:
                return 3
    return 0


@njit(nogil=True, cache=True)
def normalize_block(block, out, words, classes, two, three_rows, three):
    """out[:n] = the n bytes of ``block`` normalised (``normalize.py``): same length and LFs.

    ASCII capitals become small letters; with ``words``, every separator byte
    (``normalize.kernel_tables``) becomes a space, so the counting and
    encoding kernels then cut words as always. Eight ASCII bytes at a time;
    a chunk holding a non-ASCII byte (``words``) and the block's tail byte by byte.
    """
    n = block.shape[0]
    i = 0
    while i < n:
        if i + 8 <= n:
            x = _load8(block, i)
            if not words:
                upper = _ascii_between(x & _LOW7, 0x41, 0x5A) & ~x
                _store8(out, i, x | (upper >> _U64(2)))
                i += 8
                continue
            if x & _HIGHS == 0:
                keep = (_ascii_between(x | _CASE, 0x61, 0x7A) | _ascii_between(x, 0x30, 0x39)
                        | _equal_bytes(x, _UNDERSCORES) | _equal_bytes(x, _LFS))
                spaces = ((~keep & _HIGHS) >> _U64(7)) * _U64(0xFF)
                upper = _ascii_between(x, 0x41, 0x5A)
                _store8(out, i, ((x | (upper >> _U64(2))) & ~spaces) | (_SPACES & spaces))
                i += 8
                continue
            stop = i + 8
        else:
            stop = n
        while i < stop:  # a multi-byte separator may reach past stop
            c = block[i]
            kind = classes[c]
            if kind == 1:
                out[i] = c + 32
            elif kind == 2:
                out[i] = _SPACE
            elif kind == 4:
                length = _separator_length(block, i, n, two, three_rows, three)
                if length > 0:
                    for k in range(length):
                        out[i + k] = _SPACE
                    i += length
                    continue
                out[i] = c
            else:
                out[i] = c
            i += 1


_NORMALIZE_TABLES = {}


def normalized(data, mode, buffer=None):
    """(``data`` normalised by ``mode`` as a read-only view, the buffer holding it).

    ``buffer`` (uint8) is reused when it is large enough: one per counting table.
    """
    if mode not in _NORMALIZE_TABLES:
        _NORMALIZE_TABLES[mode] = normalize.kernel_tables(mode)
    n = data.shape[0]
    if buffer is None or buffer.shape[0] < n:
        buffer = np.empty(max(n, 16), np.uint8)
    normalize_block(data, buffer, mode == "words", *_NORMALIZE_TABLES[mode])
    view = buffer[:n]
    view.flags.writeable = False  # the one array type the kernels are compiled for
    return view, buffer


# ---------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _max_rows(slots, hashes, offsets, counts):
    """How many rows the arrays hold with the slots at most half full."""
    return min(hashes.shape[0], counts.shape[0], offsets.shape[0] - 1, slots.shape[0] // 2)


@njit(cache=True, inline="always")
def _add_row(data, start, length, h, slot, slots, hashes, offsets, arena, counts, row):
    """Store key data[start:start+length] as ``row`` (count 0) at empty ``slot``; the caller made room."""
    end = offsets[row] + length
    arena[offsets[row]:end] = data[start:start + length]
    offsets[row + 1] = end
    hashes[row] = h
    counts[row] = 0
    slots[slot] = row


# How many words ahead the lookups of count_words and absorb_rows prefetch a
# word's slot, and the row the slot names (loaded by then). Measured on wiki1e8
# (1 thread, 16 MiB blocks): 17% faster than no prefetching while memory was
# slow (other load on the machine), level on a quiet machine; other distances
# (8 ahead; 24 and 12) gained less. The prefetches are written out in both
# loops on purpose: moved into a helper function (inlined by Numba or not) they
# made the counting kernel 4x slower.
_SLOT_AHEAD = 16
_ROW_AHEAD = 8


@njit(nogil=True, cache=True)
def absorb_rows(slots, hashes, offsets, arena, counts, n_words,
                src_hashes, src_offsets, src_arena, src_counts, src_rows, src_start):
    """Add the counts of rows src_start.. of another table; return (next source row, n_words).

    Stops early (next source row < src_rows) when a new word does not fit:
    the caller makes room and calls again from the returned row.
    """
    max_rows = _max_rows(slots, hashes, offsets, counts)
    mask = slots.shape[0] - 1
    # The source rows' hashes are known up front: prefetch as count_words does.
    for ahead in range(src_start, min(src_start + _SLOT_AHEAD, src_rows)):
        prefetch(slots, _slot_of(src_hashes[ahead], mask))
    r = src_start
    while r < src_rows:
        if r + _SLOT_AHEAD < src_rows:
            prefetch(slots, _slot_of(src_hashes[r + _SLOT_AHEAD], mask))
        if r + _ROW_AHEAD < src_rows:
            ahead = slots[_slot_of(src_hashes[r + _ROW_AHEAD], mask)]
            if ahead >= 0:
                prefetch(hashes, ahead)
                prefetch(offsets, ahead)
                prefetch(counts, ahead)
        lo = src_offsets[r]
        length = src_offsets[r + 1] - lo
        h = src_hashes[r]
        row = _find(src_arena, lo, length, h, slots, hashes, offsets, arena)
        if row < 0:
            if n_words >= max_rows or offsets[n_words] + length > arena.shape[0]:
                break
            _add_row(src_arena, lo, length, h, -row - 1, slots, hashes, offsets, arena, counts, n_words)
            row = n_words
            n_words += 1
        counts[row] += src_counts[r]
        r += 1
    return r, n_words


# count_words's resumable state (int64 [STATE_SIZE]); see its docstring.
_POS, _TOKENS, _N_WORDS, _IN_LINE, _SEEN_LF, _FIRST, _MIDDLE, _NEED_BYTES, _NEED_ROWS = range(9)
STATE_SIZE = 9
# Words found before any is looked up: count_words' scratch (``WordTable.found_*``).
SEGMENT_WORDS = 1024


@njit(nogil=True, cache=True)
def count_words(block, slots, hashes, offsets, arena, counts, state,
                found_starts, found_lengths, found_hashes):
    """Count the words of ``block`` (uint8) into the table, from byte ``state[_POS]``.

    Works a segment of up to ``found_starts.shape[0]`` words at a time: first
    it finds the words (start, key length, hash into the ``found_*``
    scratch) and the line edges, then it looks them up, prefetching the
    slot of the word ``_SLOT_AHEAD`` ahead and the row of the word
    ``_ROW_AHEAD`` ahead. Looking words up one by one as they are found
    leaves the CPU waiting on one cache miss after another; a table of a
    few hundred thousand words does not fit in the caches. The probe is
    written out here rather than calling ``_find``: it matches a key of up
    to 8 bytes by hash and length alone, without reading the arena, and as a
    separate function with that test it was not inlined (2x slower).

    Returns True when the block is done, False when the segment's words
    might not fit: the caller makes room for ``state[_NEED_ROWS]`` rows and
    ``state[_NEED_BYTES]`` key bytes (``WordTable._make_room``) and calls
    again with the same ``state``, which restarts the segment. Growing here
    instead would reassign the arrays inside the loop, which makes Numba
    reload them on every word (several times slower).

    ``state`` also carries the table's row count (``_N_WORDS``) and the
    block's tokens and line edges (folded into a ``counter.LineTally`` by
    ``WordTable.count_block``).
    """
    n = block.shape[0]
    n_words = state[_N_WORDS]
    tokens = state[_TOKENS]
    line_has_word = state[_IN_LINE] != 0
    seen_lf = state[_SEEN_LF] != 0
    first = state[_FIRST] != 0
    middle = state[_MIDDLE]
    max_rows = _max_rows(slots, hashes, offsets, counts)
    mask = slots.shape[0] - 1
    segment = found_starts.shape[0]
    done = True
    i = state[_POS]
    while i < n:
        segment_start = i
        # Find the segment's words. The line edges are kept aside until the
        # segment is counted: a segment that must wait for room starts over.
        m = 0
        key_bytes = 0
        s_line_has_word, s_seen_lf, s_first, s_middle = line_has_word, seen_lf, first, middle
        while i < n and m < segment:
            c = block[i]
            if c == _LF:
                if s_seen_lf:
                    if s_line_has_word:
                        s_middle += 1
                else:
                    s_first = s_line_has_word
                    s_seen_lf = True
                s_line_has_word = False
                i += 1
                continue
            if c == _SPACE or c == _TAB or c == _CR:
                i += 1
                continue
            length, end, h = _scan_word(block, i, n)
            found_starts[m] = i
            found_lengths[m] = length
            found_hashes[m] = h
            key_bytes += length
            m += 1
            i = end
            s_line_has_word = True
        if n_words + m > max_rows or offsets[n_words] + key_bytes > arena.shape[0]:
            state[_NEED_ROWS] = m
            state[_NEED_BYTES] = key_bytes
            i = segment_start
            done = False
            break
        # Look them up.
        for j in range(min(_SLOT_AHEAD, m)):
            prefetch(slots, _slot_of(found_hashes[j], mask))
        for j in range(m):
            if j + _SLOT_AHEAD < m:
                prefetch(slots, _slot_of(found_hashes[j + _SLOT_AHEAD], mask))
            if j + _ROW_AHEAD < m:
                ahead = slots[_slot_of(found_hashes[j + _ROW_AHEAD], mask)]
                if ahead >= 0:
                    prefetch(hashes, ahead)
                    prefetch(offsets, ahead)
                    prefetch(counts, ahead)
            start = found_starts[j]
            length = found_lengths[j]
            h = found_hashes[j]
            slot = _slot_of(h, mask)
            while True:
                row = slots[slot]
                if row < 0:
                    break
                if hashes[row] == h and offsets[row + 1] - offsets[row] == length:
                    # A key of up to 8 bytes is one chunk of the hash, which
                    # ``_step`` maps one to one: equal hash and length, equal key.
                    if length <= 8 or _same_key(block, start, length, arena, offsets, row):
                        break
                slot = (slot + 1) & mask
            if row < 0:
                _add_row(block, start, length, h, slot, slots, hashes, offsets, arena, counts,
                         n_words)
                row = n_words
                n_words += 1
            counts[row] += 1
        tokens += m
        line_has_word, seen_lf, first, middle = s_line_has_word, s_seen_lf, s_first, s_middle
    state[_POS] = i
    state[_N_WORDS] = n_words
    state[_TOKENS] = tokens
    state[_IN_LINE] = line_has_word
    state[_SEEN_LF] = seen_lf
    state[_FIRST] = first
    state[_MIDDLE] = middle
    return done


# encode_words's resumable state (int64 [ENCODE_STATE_SIZE]).
_E_POS, _E_IDS, _E_LINES, _E_UNRESOLVED = range(4)
ENCODE_STATE_SIZE = 4


@njit(nogil=True, cache=True)
def encode_words(block, slots, hashes, offsets, arena, ids, line_ends, unresolved, state,
                 ascii_only=False):
    """Replace the words of ``block`` by their rows, from byte ``state[_E_POS]``.

    ``ids`` (uint32, at least one slot per possible word: ``len(block) // 2 + 1``)
    receives the rows of the words in the table; others are dropped. Line
    ends go to ``line_ends`` (int64, one per LF): how many ids precede each LF.
    A word not found whose canonical form may differ from its bytes (longer
    than MAX_WORD_BYTES, or not well-formed UTF-8; with ``ascii_only``, for
    normalised text, any word with a non-ASCII byte: only Python lower-cases
    it) gets the placeholder UNRESOLVED, and a row (id position, start, stop) in ``unresolved``
    (int64 [k, 3]) for the caller to look up canonically. Returns True when
    the block is done, False when ``unresolved`` is full: the caller takes
    its rows and calls again with the same ``state`` (counts of ids, line
    ends and unresolved rows so far; the latter starts again at 0).
    """
    n = block.shape[0]
    n_ids = state[_E_IDS]
    n_lines = state[_E_LINES]
    n_unresolved = 0
    max_bytes = KEY_BYTES - 1
    done = True
    i = state[_E_POS]
    while i < n:
        c = block[i]
        if c == _LF:
            line_ends[n_lines] = n_ids
            n_lines += 1
            i += 1
            continue
        if c == _SPACE or c == _TAB or c == _CR:
            i += 1
            continue
        start = i
        length, i, h = _scan_word(block, start, n)
        row = _find(block, start, length, h, slots, hashes, offsets, arena)
        if row >= 0:
            ids[n_ids] = row
            n_ids += 1
        elif i - start > max_bytes or not (is_ascii(block, start, i) if ascii_only
                                           else is_utf8(block, start, i)):
            if n_unresolved == unresolved.shape[0]:
                i = start
                done = False
                break
            unresolved[n_unresolved, 0] = n_ids
            unresolved[n_unresolved, 1] = start
            unresolved[n_unresolved, 2] = i
            n_unresolved += 1
            ids[n_ids] = UNRESOLVED
            n_ids += 1
    state[_E_POS] = i
    state[_E_IDS] = n_ids
    state[_E_LINES] = n_lines
    state[_E_UNRESOLVED] = n_unresolved
    return done


@njit(nogil=True, cache=True)
def count_newlines(data):
    """How many LF bytes ``data`` (uint8) holds (without the temporary array of ``data == 10``)."""
    n = 0
    for i in range(data.shape[0]):
        n += data[i] == _LF
    return n


@njit(nogil=True, cache=True)
def lookup(key, slots, hashes, offsets, arena):
    """The row of ``key`` (uint8 array), or -1."""
    row = _find(key, 0, key.shape[0], key_hash(key, 0, key.shape[0]), slots, hashes, offsets, arena)
    return max(row, -1)


@njit(cache=True)
def _build(offsets, arena, n_words):
    """Slots and hashes for rows given as offsets + arena; -1 - r if row r repeats an earlier key."""
    capacity = 16
    while capacity < 2 * n_words + 2:
        capacity *= 2
    slots = np.full(capacity, -1, np.int32)
    hashes = np.empty(max(n_words, 1), np.uint64)
    for row in range(n_words):
        lo = offsets[row]
        hi = offsets[row + 1]
        h = key_hash(arena, lo, hi)
        found = _find(arena, lo, hi - lo, h, slots, hashes, offsets, arena)
        if found >= 0:
            return slots, hashes, -1 - row
        hashes[row] = h
        slots[-found - 1] = row
    return slots, hashes, n_words


@njit(cache=True, inline="always")
def is_ascii(data, start, stop):
    """Whether data[start:stop] (uint8) is all ASCII."""
    for i in range(start, stop):
        if data[i] >= 0x80:
            return False
    return True


# ascii_key_flags and key_flags are one loop over two tests: Numba would compile a
# version per test passed as an argument; two six-line kernels read more plainly.
@njit(cache=True)
def ascii_key_flags(offsets, arena, n_words):
    """``key_flags`` of a normalising table: 1 if a row's key is ASCII of at most MAX_WORD_BYTES."""
    plain = np.empty(n_words, np.uint8)
    for row in range(n_words):
        lo = offsets[row]
        hi = offsets[row + 1]
        plain[row] = hi - lo <= KEY_BYTES - 1 and is_ascii(arena, lo, hi)
    return plain


@njit(cache=True)
def key_flags(offsets, arena, n_words):
    """Per row: 1 if its key is its canonical UTF-8 (at most MAX_WORD_BYTES, well-formed), else 0."""
    plain = np.empty(n_words, np.uint8)
    for row in range(n_words):
        lo = offsets[row]
        hi = offsets[row + 1]
        plain[row] = hi - lo <= KEY_BYTES - 1 and is_utf8(arena, lo, hi)
    return plain


@njit(cache=True)
def partition_of(hashes, partitions):
    """The Parquet partition of each hash: stable across runs and machines."""
    out = np.empty(hashes.shape[0], np.int32)
    p = _U64(partitions)
    for k in range(hashes.shape[0]):
        # The top bits: the slot index uses the low ones.
        out[k] = np.int32((_mixed(hashes[k]) >> _U64(32)) % p)
    return out


# ---------------------------------------------------------------- the table


def _as_uint8(block) -> np.ndarray:
    """A read-only uint8 view (one array type: a writable one would compile every kernel again)."""
    if isinstance(block, np.ndarray):
        view = np.ascontiguousarray(block).view(np.uint8)
        view.flags.writeable = False
        return view
    return np.frombuffer(block, dtype=np.uint8)


class WordTable:
    """Words (raw byte keys) to rows and counts, growing as words arrive (module docstring).

    Not thread-safe for writing: give each counting thread its own table.
    A table filled by ``from_words`` is only read and can be shared.
    ``normalize`` (None, "lower" or "words", ``normalize.py``): the blocks
    are normalised first (``normalize_block``), and keys then stand for the
    normalised words.
    """

    def __init__(self, rows: int = 1 << 12, arena_bytes: int = 1 << 16,
                 normalize: str | None = None):
        self._set_normalize(normalize)
        capacity = 16
        while capacity < 2 * rows:
            capacity *= 2
        self.slots = np.full(capacity, -1, np.int32)
        self.hashes = np.empty(rows, np.uint64)
        self.offsets = np.zeros(rows + 1, np.int64)
        self.arena = np.empty(arena_bytes, np.uint8)
        self.counts = np.zeros(rows, np.int64)
        self.n_words = 0
        # count_words' scratch: the words of one segment.
        self.found_starts = np.empty(SEGMENT_WORDS, np.int64)
        self.found_lengths = np.empty(SEGMENT_WORDS, np.int64)
        self.found_hashes = np.empty(SEGMENT_WORDS, np.uint64)

    def _set_normalize(self, mode):
        self.normalize = normalize.check_mode(mode)
        # A key's word: the canonical string, lower-cased when normalising.
        self.word_string = normalize.word_string if self.normalize else corpus.canonical_word
        self._normalized = None  # the buffer of the last normalised block (counting)

    # -- counting

    def count_block(self, block) -> tuple[int, bool, int, bool, bool]:
        """Count the words of a block; return (tokens, first, middle, last, newline) of its lines.

        The line edges are those of ``counter.LineTally``.
        """
        data = _as_uint8(block)
        if self.normalize:
            data, self._normalized = normalized(data, self.normalize, self._normalized)
        state = np.zeros(STATE_SIZE, np.int64)
        state[_N_WORDS] = self.n_words
        while not count_words(data, self.slots, self.hashes, self.offsets, self.arena, self.counts,
                              state, self.found_starts, self.found_lengths, self.found_hashes):
            self.n_words = int(state[_N_WORDS])
            self._make_room(int(state[_NEED_BYTES]), int(state[_NEED_ROWS]))
        self.n_words = int(state[_N_WORDS])
        tokens = int(state[_TOKENS])
        if not state[_SEEN_LF]:
            return tokens, tokens > 0, 0, False, False
        return tokens, bool(state[_FIRST]), int(state[_MIDDLE]), bool(state[_IN_LINE]), True

    def absorb(self, other: "WordTable") -> None:
        """Add every word and count of ``other`` (another counting table) to this one."""
        r = 0
        while r < other.n_words:
            r, self.n_words = absorb_rows(self.slots, self.hashes, self.offsets, self.arena,
                                          self.counts, self.n_words, other.hashes, other.offsets,
                                          other.arena, other.counts, other.n_words, r)
            if r < other.n_words:
                self._make_room(int(other.offsets[r + 1] - other.offsets[r]))

    def _make_room(self, key_bytes: int, rows: int = 1) -> None:
        """Room for ``rows`` more rows of ``key_bytes`` bytes in all: arrays grown (at least
        doubled), slots rehashed."""
        n = self.n_words
        capacity = self.slots.shape[0]
        while n + rows > capacity // 2:
            capacity *= 2
        if capacity > self.slots.shape[0]:
            self.slots = _rehashed(capacity, self.hashes, n)
        if n + rows > self.hashes.shape[0]:
            self.hashes = grown(self.hashes, n + rows)
        if n + rows > self.counts.shape[0]:
            self.counts = grown(self.counts, n + rows)
        if n + rows + 1 > self.offsets.shape[0]:
            self.offsets = grown(self.offsets, n + rows + 1)
        need = int(self.offsets[n]) + key_bytes
        if need > self.arena.shape[0]:
            self.arena = grown(self.arena, need)

    def __len__(self) -> int:
        return self.n_words

    @property
    def nbytes(self) -> int:
        """Memory held by the table's arrays."""
        return sum(a.nbytes for a in (self.slots, self.hashes, self.offsets, self.arena, self.counts))

    def keys(self) -> pa.LargeBinaryArray:
        """The raw keys, row by row, as an Arrow array sharing the table's memory."""
        n = self.n_words
        return pa.Array.from_buffers(pa.large_binary(), n, [
            None, pa.py_buffer(self.offsets[:n + 1]), pa.py_buffer(self.arena[:int(self.offsets[n])])])

    def word_counts(self) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """(words: string, counts int64, word hashes uint64) with words canonicalised.

        Keys whose canonical string differs from their bytes (too long or not
        well-formed UTF-8) are canonicalised in Python (they are rare) and
        merged with any equal word, so the words come out unique.
        """
        n = self.n_words
        words = self.keys().cast(pa.large_string(), safe=False)
        counts = self.counts[:n].copy()
        hashes = self.hashes[:n].copy()
        flags = ascii_key_flags if self.normalize else key_flags
        plain = flags(self.offsets, self.arena, n).view(bool)
        if plain.all():
            return words, counts, hashes
        odd_rows = np.flatnonzero(~plain)
        merged: dict[str, int] = {}
        raw = self.keys()
        for r in odd_rows.tolist():
            word = self.word_string(raw[r].as_py())
            merged[word] = merged.get(word, 0) + int(counts[r])
        keep = np.flatnonzero(plain)
        clean_words = words.take(pa.array(keep))
        counts = counts[keep]
        hashes = hashes[keep]
        kept_index = np.cumsum(plain) - 1  # row -> its index among the kept rows
        extra_words, extra_counts = [], []
        for word, c in merged.items():
            # A canonicalised word may equal a clean key of this table: fold it into that row.
            row = self.find(word.encode("utf-8"))
            if row >= 0 and plain[row]:
                counts[kept_index[row]] += c
            else:
                extra_words.append(word)
                extra_counts.append(c)
        if extra_words:
            extra_hashes = np.array([word_hash(w.encode("utf-8")) for w in extra_words], np.uint64)
            clean_words = pa.concat_arrays([clean_words, pa.array(extra_words, pa.large_string())])
            counts = np.concatenate([counts, np.array(extra_counts, np.int64)])
            hashes = np.concatenate([hashes, extra_hashes])
        return clean_words, counts, hashes

    def clear(self) -> None:
        """Forget every word, keeping the memory for the next ones."""
        self.slots.fill(-1)
        self.offsets[0] = 0
        self.n_words = 0

    # -- looking up

    @classmethod
    def from_words(cls, words, normalize: str | None = None) -> "WordTable":
        """A lookup table whose row i is ``words[i]`` (strings, or an Arrow string array).

        For ``find`` and ``encode_block`` only: it has no counts (nor counting
        scratch), so it cannot count. Raises ValueError on a repeated word.
        ``normalize``: the blocks ``encode_block`` reads are normalised so
        (the words must be normalised words).
        """
        if not isinstance(words, (pa.Array, pa.ChunkedArray)):
            words = pa.array(list(words), pa.large_string())
        if isinstance(words, pa.ChunkedArray):
            words = words.combine_chunks() if words.num_chunks != 1 else words.chunk(0)
        words = words.cast(pa.large_string())
        if words.offset or words.null_count:
            words = pa.array(words.to_pylist(), pa.large_string())
        _, offset_buf, data_buf = words.buffers()
        n = len(words)
        table = cls.__new__(cls)
        table._set_normalize(normalize)
        table.offsets = np.frombuffer(offset_buf, np.int64, n + 1).copy()
        table.arena = (np.frombuffer(data_buf, np.uint8, int(table.offsets[n])).copy()
                       if data_buf is not None else np.empty(0, np.uint8))
        table.slots, table.hashes, status = _build(table.offsets, table.arena, n)
        if status != n:
            row = -1 - status
            raise ValueError(f"word {words[row].as_py()!r} occurs twice (row {row})")
        table.counts = np.zeros(0, np.int64)  # lookup only: it cannot count
        table.n_words = n
        return table

    def find(self, word: bytes) -> int:
        """The row of a word given as its bytes (all of them: a lookup table's keys are whole), or -1."""
        key = np.frombuffer(word, np.uint8)
        return int(lookup(key, self.slots, self.hashes, self.offsets, self.arena))

    def encode_block(self, block) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the block's words in the table, and the line ends (``encode_words``).

        Returns (ids uint32, line_ends int64): unknown words are dropped;
        line_ends[k] is how many ids precede the block's k-th LF. A word is
        looked up by its canonical form, as counting stored it.
        """
        data = _as_uint8(block)
        if self.normalize:  # a buffer per block: encoding threads share the table
            data = normalized(data, self.normalize)[0]
        ids = np.empty(data.shape[0] // 2 + 1, np.uint32)
        newlines = block.count(b"\n") if isinstance(block, bytes) else int(count_newlines(data))
        line_ends = np.empty(newlines, np.int64)
        unresolved = np.empty((1024, 3), np.int64)
        found = []
        state = np.zeros(ENCODE_STATE_SIZE, np.int64)
        while True:
            done = encode_words(data, self.slots, self.hashes, self.offsets, self.arena, ids,
                                line_ends, unresolved, state, self.normalize is not None)
            found.append(unresolved[:state[_E_UNRESOLVED]].copy())
            if done:
                break
        n_ids, n_lines = int(state[_E_IDS]), int(state[_E_LINES])
        unresolved = np.concatenate(found)
        ids = ids[:n_ids]
        line_ends = line_ends[:n_lines]
        if unresolved.shape[0]:
            raw = bytes(data) if not isinstance(block, bytes) or self.normalize else block
            rows_of = {}  # the block's repeats are looked up once
            for pos, start, stop in unresolved.tolist():
                key = raw[start:stop]
                row = rows_of.get(key)
                if row is None:
                    row = rows_of[key] = self.find(self.word_string(key).encode("utf-8"))
                if row >= 0:
                    ids[pos] = row
            known = ids != UNRESOLVED
            if not known.all():
                kept_before = np.concatenate([[0], np.cumsum(known)])
                line_ends = kept_before[line_ends]
                ids = ids[known]
        return ids, line_ends


def warm_up() -> None:
    """Run every kernel here once on tiny input, so Numba compiles (or loads) them all.

    The first call of a kernel compiles it (seconds) or loads it from Numba's
    cache; benchmarks call this first so that neither is timed.
    """
    a, b = WordTable(rows=1, arena_bytes=1), WordTable(rows=1, arena_bytes=1)
    a.count_block(b"warm up\n")
    b.count_block(np.frombuffer(b"up \xff", np.uint8))
    a.absorb(b)
    a.word_counts()
    partition_of(a.hashes[:len(a)], 16)
    lookup_table = WordTable.from_words(["warm", "up"])
    lookup_table.encode_block(b"warm \xff up")
    lookup_table.encode_block(np.frombuffer(b"warm \xff up\n", np.uint8))
    lookup_table.find(b"up")
    for mode in normalize.MODES:
        WordTable(rows=1, arena_bytes=1, normalize=mode).count_block(b"Warm, up\n\xc2\xa0")
        WordTable.from_words(["warm"], normalize=mode).encode_block(b"Warm, \xc3\x89t\xc3\xa9")


def word_hash(word: bytes) -> np.uint64:
    """The hash of a word's bytes (``key_hash``), as a table stores it for a key."""
    key = np.frombuffer(word, np.uint8)
    return key_hash(key, 0, key.shape[0])


def word_partitions(words, partitions: int) -> np.ndarray:
    """The Parquet partition of each word (strings): the one counting writes it to."""
    hashes = np.array([word_hash(w.encode("utf-8")) for w in words], np.uint64)
    return partition_of(hashes, partitions)
