"""The standard word-vector evaluations, computed as the C tool and gensim do.

Analogies (Google's questions-words.txt): 3CosAdd over unit vectors, searching
only the most frequent `restrict_vocab` words, the three question words
excluded, case-insensitive, questions with an unknown word skipped and counted.
Word pairs (WordSim-353, SimLex-999): Spearman correlation between cosine
similarity and the human scores over the pairs whose words are known.

Undefined numbers (an accuracy with nothing answered, a correlation over fewer
than two pairs or constant values) are reported as None, never 0 or NaN, so a
missing result cannot be mistaken for a bad one.
"""

import logging
import os

import numpy as np

from .errors import InputDataError, MissingInputError, UsageError
from .vectors import unit_rows

log = logging.getLogger("bigw2v")

# Questions scored per matrix product: [batch, restrict_vocab] float32 scores
# are ~120 MB at 30,000 words, small enough, and large enough for BLAS to be
# efficient.
QUESTION_BATCH = 1000


def fold_case(word):
    """Case folding used to match question words against the vocabulary.

    Upper-casing, like the C tool's compute-accuracy and gensim.
    """
    return word.upper()


def folded_vocabulary(words, case_insensitive=True):
    """Map each (folded) word to its row, the earliest row winning.

    Rows are ordered by frequency, so when "Paris" and "paris" fold together
    the more frequent spelling stands for both.
    """
    lookup = {}
    for row in range(len(words) - 1, -1, -1):
        word = words[row]
        lookup[fold_case(word) if case_insensitive else word] = row
    return lookup


def _open_text(path, what):
    if not os.path.isfile(path):
        raise MissingInputError(f"{what} file {path} does not exist")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputDataError(f"cannot read {what} file {path}: {e.strerror or e}") from None


def read_analogies(path):
    """Parse a Google-format analogy file into [(section name, [(a, b, c, d), ...]), ...].

    Lines that are not a ': section' header or four words are skipped (gensim
    does the same); a file with no question at all is an error.
    """
    return _read_analogies(path)[0]


def _skipped(path, what, numbers, expected):
    """Say that lines of an evaluation file were skipped, naming the first few."""
    if numbers:
        shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
        log.warning("%s: skipped %d malformed %s (not %s): line%s %s", path, len(numbers),
                    what if len(numbers) != 1 else what.rstrip("s"), expected,
                    "s" if len(numbers) > 1 else "", shown)


def _read_analogies(path):
    """``read_analogies``, and the numbers of the lines it skipped."""
    sections = []
    skipped = []
    for number, line in enumerate(_open_text(path, "analogy questions"), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
            continue
        words = line.split()
        if len(words) != 4:
            skipped.append(number)
            continue
        if not sections:
            raise InputDataError(f"{path}:{number}: question before the first ': section' line")
        sections[-1][1].append(tuple(words))
    if not any(questions for _, questions in sections):
        raise InputDataError(f"{path}: no analogy questions ('a b c d' lines) found")
    return sections, skipped


def is_syntactic(section_name):
    """Google's file names its syntactic sections gram1-..., gram9-...."""
    return section_name.startswith("gram")


def _accuracy(correct, answered):
    return correct / answered if answered else None


def evaluate_analogies(vectors, path, restrict_vocab=30000, case_insensitive=True):
    """Score `vectors` on an analogy file; returns per-section and summed counts.

    A question "a b c d" is answered correctly when the word whose unit vector
    has the highest cosine with unit(b) - unit(a) + unit(c), among the first
    `restrict_vocab` rows and excluding a, b and c, is d. With case folding,
    every spelling of a, b or c is excluded and any spelling of d counts as
    correct, as in gensim.
    """
    if restrict_vocab is None:
        restrict_vocab = len(vectors)
    if restrict_vocab <= 0:
        raise UsageError(f"restrict_vocab must be positive, got {restrict_vocab}")
    sections, malformed = _read_analogies(path)
    _skipped(path, "lines", malformed, "': section' or four words")
    limit = min(restrict_vocab, len(vectors))
    candidate_words = vectors.words[:limit]
    lookup = folded_vocabulary(candidate_words, case_insensitive)
    fold = fold_case if case_insensitive else (lambda w: w)

    # canonical[row] is the row standing for that row's folded spelling;
    # spellings lists the other rows of the few words that have several.
    canonical = np.array([lookup[fold(w)] for w in candidate_words], dtype=np.int64)
    other_spellings = {}
    for row in np.flatnonzero(canonical != np.arange(limit)):
        other_spellings.setdefault(int(canonical[row]), []).append(int(row))

    unit = vectors.unit_vectors(limit)
    results = []
    for name, questions in sections:
        rows = []
        for question in questions:
            folded = [lookup.get(fold(w)) for w in question]
            if None not in folded:
                rows.append(folded)
        correct = _count_correct(unit, np.array(rows, dtype=np.int64).reshape(-1, 4),
                                 canonical, other_spellings)
        results.append({
            "name": name,
            "correct": correct,
            "answered": len(rows),
            "skipped": len(questions) - len(rows),
            "questions": len(questions),
            "accuracy": _accuracy(correct, len(rows)),
        })

    def total(selected):
        summed = {key: sum(s[key] for s in selected)
                  for key in ("correct", "answered", "skipped", "questions")}
        summed["accuracy"] = _accuracy(summed["correct"], summed["answered"])
        return summed

    return {
        "sections": results,
        "semantic": total([s for s in results if not is_syntactic(s["name"])]),
        "syntactic": total([s for s in results if is_syntactic(s["name"])]),
        "total": total(results),
        "restrict_vocab": limit,
        "malformed_lines": len(malformed),
    }


def _count_correct(unit, questions, canonical, other_spellings):
    """How many [a, b, c, d] row quadruples 3CosAdd answers with d's spelling."""
    correct = 0
    for start in range(0, len(questions), QUESTION_BATCH):
        batch = questions[start:start + QUESTION_BATCH]
        a, b, c, d = batch.T
        # No need to renormalise the query: it does not change the argmax.
        scores = (unit[b] - unit[a] + unit[c]) @ unit.T
        question_index = np.arange(len(batch))
        for column in (a, b, c):
            scores[question_index, column] = -np.inf
            if other_spellings:
                for q in question_index:
                    extra = other_spellings.get(int(column[q]))
                    if extra:
                        scores[q, extra] = -np.inf
        predicted = np.argmax(scores, axis=1)
        correct += int(np.count_nonzero(canonical[predicted] == d))
    return correct


def read_pairs(path):
    """Parse a word-pair file: 'w1<TAB>w2<TAB>score' lines, '#' comments.

    Lines that do not parse (such as a column-header row) are skipped; a file
    with no pair at all is an error.
    """
    return _read_pairs(path)[0]


def _read_pairs(path):
    """``read_pairs``, and the numbers of the lines it skipped."""
    pairs = []
    skipped = []
    for number, line in enumerate(_open_text(path, "word pairs"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        try:
            if len(fields) != 3:
                raise ValueError
            score = float(fields[2])
        except ValueError:
            skipped.append(number)
            continue
        pairs.append((fields[0].strip(), fields[1].strip(), score))
    if not pairs:
        raise InputDataError(f"{path}: no word pairs ('word1<TAB>word2<TAB>score' lines) found")
    return pairs, skipped


def average_ranks(values):
    """Ranks 1..n of `values`, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Each run of equal values gets the mean of the positions it spans.
    starts_new_run = np.concatenate(([True], sorted_values[1:] != sorted_values[:-1]))
    run_id = np.cumsum(starts_new_run) - 1
    run_starts = np.flatnonzero(starts_new_run)
    run_ends = np.concatenate((run_starts[1:], [len(values)]))
    run_mean_rank = (run_starts + run_ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = run_mean_rank[run_id]
    return ranks


def pearson(x, y):
    """Pearson correlation, or None when undefined (fewer than 2 values, or constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return None
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    if denominator == 0:
        return None
    return float(np.clip(np.dot(x, y) / denominator, -1.0, 1.0))


def spearman(x, y):
    """Spearman rank correlation with average ranks for ties, or None when undefined."""
    if len(x) < 2:
        return None
    return pearson(average_ranks(x), average_ranks(y))


def evaluate_pairs(vectors, path, case_insensitive=True):
    """Correlate cosine similarity with human scores on a word-pair file.

    Pairs with a word missing from the vocabulary (the whole vocabulary,
    case-folded like the analogies) are left out and counted in `oov`;
    `oov_ratio` is their fraction of all pairs (0..1).
    """
    pairs, malformed = _read_pairs(path)
    _skipped(path, "lines", malformed, "two words and a score")
    lookup = folded_vocabulary(vectors.words, case_insensitive)
    fold = fold_case if case_insensitive else (lambda w: w)
    rows_a, rows_b, human = [], [], []
    for w1, w2, score in pairs:
        a, b = lookup.get(fold(w1)), lookup.get(fold(w2))
        if a is not None and b is not None:
            rows_a.append(a)
            rows_b.append(b)
            human.append(score)
    unit_a = unit_rows(vectors.vectors[np.array(rows_a, dtype=np.int64)])
    unit_b = unit_rows(vectors.vectors[np.array(rows_b, dtype=np.int64)])
    cosines = np.einsum("ij,ij->i", unit_a.astype(np.float64), unit_b.astype(np.float64))
    oov = len(pairs) - len(human)
    return {
        "name": os.path.splitext(os.path.basename(path))[0],
        "spearman": spearman(cosines, human),
        "pearson": pearson(cosines, human),
        "pairs": len(human),
        "oov": oov,
        "oov_ratio": oov / len(pairs),
        "malformed_lines": len(malformed),
    }


def _percent(value):
    return "     -" if value is None else f"{100 * value:5.1f}%"


def _correlation(value):
    return "     -" if value is None else f"{value:6.3f}"


def format_report(analogy_result=None, pair_results=()):
    """A plain-text table of evaluation results, for people and logs (no final newline)."""
    lines = []
    if analogy_result is not None:
        lines.append(f"Analogies (3CosAdd, {analogy_result['restrict_vocab']:,} most frequent words)")
        width = max([len(s["name"]) for s in analogy_result["sections"]] + [10])
        header = f"  {'section':<{width}}  {'accuracy':>8}  {'correct':>8}  {'answered':>8}  {'skipped':>8}"
        lines.append(header)
        lines.append("  " + "-" * (len(header) - 2))

        def row(name, counts):
            return (f"  {name:<{width}}  {_percent(counts['accuracy']):>8}  {counts['correct']:>8,}"
                    f"  {counts['answered']:>8,}  {counts['skipped']:>8,}")

        for section in analogy_result["sections"]:
            lines.append(row(section["name"], section))
        lines.append("  " + "-" * (len(header) - 2))
        for key in ("semantic", "syntactic", "total"):
            lines.append(row(key, analogy_result[key]))
    if pair_results:
        if lines:
            lines.append("")
        lines.append("Word pairs (correlation of cosine with human scores)")
        width = max([len(r["name"]) for r in pair_results] + [8])
        header = f"  {'set':<{width}}  {'spearman':>8}  {'pearson':>8}  {'pairs':>6}  {'oov':>6}"
        lines.append(header)
        lines.append("  " + "-" * (len(header) - 2))
        for result in pair_results:
            lines.append(
                f"  {result['name']:<{width}}  {_correlation(result['spearman']):>8}"
                f"  {_correlation(result['pearson']):>8}  {result['pairs']:>6,}"
                f"  {result['oov']:>6,}"
            )
    if not lines:
        return "(no evaluation results)"
    return "\n".join(lines)
