"""The corpus cut into one slice per Ray training node, of about equal words.

Slices are consecutive: slice 0 starts with the first input (in the count's
order) and slice N-1 ends with the last, so the slices read in order are the
corpus once. The cuts fall where the counted words (count.json's per-input
``tokens``) reach k/N of the total. An input a cut falls inside is cut there
as well, by bytes in proportion to its words, when it is a plain local text
file (``corpus.FilePart``; the bounds move to word boundaries when read);
any other input (compressed, a table, an object in a store) goes whole to
the slice that holds the middle of its words.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import corpus
from .errors import UsageError


@dataclass(frozen=True)
class Slice:
    """One node's share of the corpus: what it reads, and how many tokens that can hold."""

    pieces: tuple        # corpus.InputFile or corpus.FilePart, in the corpus's order
    words: int           # counted words planned for it (a part's are its bytes' share)
    most_tokens: int     # at most this many tokens of the vocabulary: the token file's room


def plan(inputs, records, n, normalize=None):
    """The corpus's ``inputs`` (with count.json's ``records`` of them) cut into ``n`` slices.

    Raises UsageError when some slice would get no words (fewer inputs that
    can be cut than nodes): the run should use fewer nodes.
    """
    tokens = [int(rec["tokens"]) for rec in records]
    total = max(1, sum(tokens))
    cut = [k * total // n for k in range(n + 1)]       # slice k: counted words cut[k]..cut[k+1]
    pieces = [[] for _ in range(n)]
    at = 0
    for inp, t in zip(inputs, tokens):
        lo, hi = at, at + t
        at = hi
        first, last = _slice_at(lo, total, n), _slice_at(max(lo, hi - 1), total, n)
        if first == last or not corpus.splittable(inp):
            k = _slice_at((lo + hi) // 2, total, n)
            pieces[k].append((inp, t, t))
            continue
        for k in range(first, last + 1):
            start, stop = (inp.size * (min(hi, max(lo, c)) - lo) // t for c in cut[k:k + 2])
            part = corpus.FilePart(inp, start, stop)
            # k words need k starts and k - 1 separators between them (without
            # normalisation, which can split words at more bytes).
            room = t if normalize else min(t, (part.size + 1) // 2)
            pieces[k].append((part, min(hi, cut[k + 1]) - max(lo, cut[k]), room))
    slices = [Slice(tuple(p for p, _, _ in got), sum(w for _, w, _ in got),
                    sum(r for _, _, r in got)) for got in pieces]
    empty = sum(1 for s in slices if s.words == 0)
    if empty:
        raise UsageError(f"--nodes {n}: the corpus cuts into only {n - empty} slice(s) with "
                         f"words (compressed files and tables are not cut): train on at most "
                         f"{n - empty} node(s)")
    return slices


def _slice_at(word, total, n):
    """The slice that counted word number ``word`` falls in."""
    return min(n - 1, word * n // total)
