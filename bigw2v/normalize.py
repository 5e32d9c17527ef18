"""Text normalisation at counting speed: ``count --normalize lower|words``.

Raw text (Wikipedia dumps, web crawls) makes ``Paris``, ``Paris,`` and
``paris`` three words. The C tool's users normalise with a script first
(its big-model demo lower-cases and splits punctuation off words), gensim's
with ``simple_preprocess``. Here the rule is applied by the Numba tokenizer
itself (``wordtable.normalize_block``), by ``count`` and, identically, by the
encoding ``train`` makes; the workdir records it (count.json's
``settings.normalize``) and so does the model (model.json's ``normalize``).

The rule, on the bytes of the text:

``lower``
    Words are cut as without normalisation (the C tool's rule: runs of bytes
    other than space, tab, CR and LF), then lower-cased: ASCII ``A``-``Z``
    become ``a``-``z`` in the kernel; a word with any non-ASCII byte becomes
    ``corpus.canonical_word(its bytes).lower()`` (Python's full Unicode
    lower-case mapping, ``É`` -> ``é``, ``ΣΑ`` -> ``σα``), computed in Python
    once per distinct word when counting and once per occurrence of a word
    whose bytes the vocabulary does not hold when encoding.
``words``
    First more bytes separate words, then ``lower``. Separators, beside
    space, tab, CR and LF (a LF still ends a sentence): every ASCII byte other
    than a letter, a digit or ``_`` (punctuation, symbols, control bytes), and
    the UTF-8 encoding of every character of Unicode category P (but Pc, the
    connectors like ``_``), S, Z or Cc in four blocks: Latin-1 Supplement
    (U+0080-U+00FF: NBSP, ``« » ¿ ¡ § ° · × ÷`` ...), General Punctuation
    (U+2000-U+206F: dashes, curly quotes, ellipsis, typographic spaces),
    CJK Symbols and Punctuation (U+3000-U+303F) and Halfwidth and Fullwidth
    Forms (U+FF00-U+FFEF). Digits and letters of every script stay; so do
    format characters such as the soft hyphen and ZWJ. ``don't`` is ``don``
    and ``t``, ``U.S.`` is ``u`` and ``s``, ``<doc`` is ``doc``, ``1990–95``
    is ``1990`` and ``95``. (The demo script also keeps ``. , ( ) ! ? "`` as
    words and deletes digits; here punctuation is dropped and digits kept.)

Separators never end up inside a word: no character's lower-case form is a
separator. The byte rule applies to invalid UTF-8 as well (a separator's bytes
are a separator wherever they occur); other invalid bytes stay in their word
and become U+FFFD as always. A run of more than 1000 bytes without space, tab,
CR or LF that crosses a block boundary is cut by the reader before this rule
applies, as without normalisation (``corpus.py``).
"""

import unicodedata

import numpy as np

from .corpus import canonical_word
from .errors import UsageError

MODES = ("lower", "words")

# The Unicode blocks whose punctuation, symbols, spaces and controls separate words.
SEPARATOR_BLOCKS = ((0x0080, 0x00FF), (0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFFEF))


def check_mode(mode):
    """The normalisation to record: None (none) or one of MODES; UsageError otherwise."""
    if mode is None or mode == "none":
        return None
    if mode not in MODES:
        raise UsageError(f"--normalize must be none, lower or words, not {mode!r}")
    return mode


def is_separator_char(ch):
    """Whether a non-ASCII character separates words in ``words`` mode (module docstring)."""
    code = ord(ch)
    if not any(lo <= code <= hi for lo, hi in SEPARATOR_BLOCKS):
        return False
    category = unicodedata.category(ch)
    return (category[0] in "PSZ" and category != "Pc") or category == "Cc"


def is_separator_byte(byte):
    """Whether an ASCII byte separates words in ``words`` mode (not a letter, digit or _)."""
    ch = chr(byte)
    return byte < 0x80 and not (ch.isascii() and (ch.isalnum() or ch == "_"))


def separator_chars():
    """Every non-ASCII separator character of ``words`` mode."""
    return [chr(c) for lo, hi in SEPARATOR_BLOCKS for c in range(lo, hi + 1)
            if is_separator_char(chr(c))]


def word_string(raw):
    """The vocabulary string of a normalised word's bytes (both modes: split first)."""
    return canonical_word(raw).lower()


def kernel_tables(mode):
    """The byte tables ``wordtable.normalize_block`` takes for ``mode``.

    ``classes`` uint8 [256]: 0 a byte kept as is, 1 an ASCII capital, 2 a
    separator byte (it becomes a space), 3 a LF, 4 a byte that may start a
    multi-byte separator. ``two`` bool [32, 64]: [lead - 0xC0, second - 0x80]
    is a separator; ``three_rows`` int16 [16, 64]: [lead - 0xE0, second - 0x80]
    is a row of ``three`` (bool [rows, 64], by third byte - 0x80), or -1.
    """
    classes = np.zeros(256, np.uint8)
    classes[ord("A"):ord("Z") + 1] = 1
    two = np.zeros((32, 64), np.bool_)
    three_rows = np.full((16, 64), -1, np.int16)
    rows = []
    if mode == "words":
        for byte in range(0x80):
            if is_separator_byte(byte):
                classes[byte] = 2
        for ch in separator_chars():
            code = ch.encode("utf-8")
            classes[code[0]] = 4
            if len(code) == 2:
                two[code[0] - 0xC0, code[1] - 0x80] = True
            else:
                lead, second = code[0] - 0xE0, code[1] - 0x80
                if three_rows[lead, second] < 0:
                    three_rows[lead, second] = len(rows)
                    rows.append(np.zeros(64, np.bool_))
                rows[three_rows[lead, second]][code[2] - 0x80] = True
    classes[ord("\n")] = 3
    three = np.array(rows, np.bool_).reshape(-1, 64) if rows else np.zeros((1, 64), np.bool_)
    return classes, two, three_rows, three
