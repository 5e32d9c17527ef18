"""Tests for bigw2v.evaluate: analogies, word-pair correlations, the report."""

import os

import numpy as np
import pytest

from bigw2v.errors import InputDataError, MissingInputError
from bigw2v.evaluate import (
    average_ranks,
    evaluate_analogies,
    evaluate_pairs,
    format_report,
    read_analogies,
    spearman,
)
from bigw2v.vectors import Vectors

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_EVAL = os.path.join(REPO_ROOT, "..", "shared", "data", "eval")


def country_capital_vectors():
    """Countries and capitals built so that 3CosAdd over unit vectors is exact.

    Each country has its own axis; a capital is its country's axis plus a
    shared "capital of" axis; the two noise words have axes of their own.
    Rows are ordered as if by frequency; "tokyo" is last.
    """
    dim = 8
    axes = np.eye(dim, dtype=np.float32)
    capital_axis = axes[7]
    countries = ["france", "germany", "italy", "japan"]
    capitals = ["paris", "berlin", "rome", "tokyo"]
    words = countries + capitals[:3] + ["noise1", "noise2"] + capitals[3:]
    rows = [axes[i] for i in range(4)] + [axes[i] + capital_axis for i in range(3)] \
        + [axes[4], axes[5]] + [axes[3] + capital_axis]
    return Vectors(words, np.array(rows, dtype=np.float32))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


QUESTIONS = """\
: capital-common-countries
France Paris Germany Berlin
Germany Berlin Italy Rome
France Paris Japan Tokyo
France Paris Spain Madrid
: gram-fake
paris france rome italy
"""


def test_analogies_known_answers(tmp_path):
    result = evaluate_analogies(country_capital_vectors(), write(tmp_path / "q.txt", QUESTIONS))
    first, second = result["sections"]
    assert first["name"] == "capital-common-countries"
    assert (first["correct"], first["answered"], first["skipped"]) == (3, 3, 1)
    assert first["accuracy"] == 1.0
    assert (second["correct"], second["answered"]) == (1, 1)
    assert result["semantic"]["correct"] == 3 and result["syntactic"]["correct"] == 1
    assert result["total"] == {"correct": 4, "answered": 4, "skipped": 1, "questions": 5,
                               "accuracy": 1.0}
    assert result["restrict_vocab"] == len(country_capital_vectors())


def test_analogies_restrict_vocab(tmp_path):
    vectors = country_capital_vectors()
    questions = write(tmp_path / "q.txt", QUESTIONS)
    # "tokyo" is row 9: outside the first 9 rows its question is skipped.
    result = evaluate_analogies(vectors, questions, restrict_vocab=9)
    section = result["sections"][0]
    assert (section["correct"], section["answered"], section["skipped"]) == (2, 2, 2)
    assert result["restrict_vocab"] == 9


def test_analogies_restricted_rows_are_not_candidates(tmp_path):
    # The answer "rome" (row 6) exists but lies outside the searched rows: the
    # question is skipped, never answered by an unrestricted search.
    vectors = country_capital_vectors()
    questions = write(tmp_path / "q.txt", ": s\nfrance paris italy rome\n")
    result = evaluate_analogies(vectors, questions, restrict_vocab=6)
    assert result["total"]["skipped"] == 1 and result["total"]["answered"] == 0
    assert result["total"]["accuracy"] is None


def test_analogies_exclude_question_words(tmp_path):
    # b - a + c is closest to c itself here; excluding it leaves "d".
    words = ["a", "b", "c", "d", "e"]
    matrix = np.array([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0.1, 0.9, 0.3], [0, 0, 1]],
                      dtype=np.float32)
    result = evaluate_analogies(Vectors(words, matrix), write(tmp_path / "q.txt", ": s\na b c d\n"))
    assert result["total"]["correct"] == 1


def test_analogies_case_folding_keeps_most_frequent(tmp_path):
    # "Paris" (row 0) is more frequent than "paris": "PARIS" means row 0. Its
    # vector equals noise1's, which then becomes the best answer.
    vectors = country_capital_vectors()
    words = ["Paris"] + list(vectors.words)
    matrix = np.vstack([vectors["noise1"], vectors.vectors])
    folded = Vectors(words, matrix)
    questions = write(tmp_path / "q.txt", ": s\nfrance paris germany berlin\n")
    # The question's "paris" is the decoy row, so the analogy fails...
    assert evaluate_analogies(folded, questions)["total"]["correct"] == 0
    # ...but an exact-case search uses the real "paris".
    assert evaluate_analogies(folded, questions, case_insensitive=False)["total"]["correct"] == 1

    # Any spelling of the answer counts: here the nearest row is "berlin" while
    # the question's BERLIN means the more frequent (but far) "Berlin".
    far = Vectors(["Berlin"] + list(vectors.words), np.vstack([vectors["noise2"], vectors.vectors]))
    assert evaluate_analogies(far, questions)["total"]["correct"] == 1
    assert evaluate_analogies(far, write(tmp_path / "q2.txt", ": s\nfrance paris germany Berlin\n"),
                              case_insensitive=False)["total"]["correct"] == 0


def test_analogies_case_variants_of_question_words_are_excluded(tmp_path):
    # "C" is a less frequent spelling of question word "c" and the nearest
    # point; like gensim we do not let it be the answer.
    words = ["a", "b", "c", "d", "C"]
    matrix = np.array([[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0.1, 0.9, 0.3], [0, 1, 0.01]],
                      dtype=np.float32)
    questions = write(tmp_path / "q.txt", ": s\na b c d\n")
    assert evaluate_analogies(Vectors(words, matrix), questions)["total"]["correct"] == 1


def test_analogies_batches_agree_with_single_queries(tmp_path, monkeypatch):
    import bigw2v.evaluate as evaluate

    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(60)]
    vectors = Vectors(words, rng.normal(size=(60, 8)).astype(np.float32))
    lines = [" ".join(rng.choice(words, 4, replace=False)) for _ in range(50)]
    questions = write(tmp_path / "q.txt", ": s\n" + "\n".join(lines) + "\n")
    expected = sum(vectors.analogy(*line.split()[:3], topn=1)[0][0] == line.split()[3]
                   for line in lines)
    monkeypatch.setattr(evaluate, "QUESTION_BATCH", 7)
    assert evaluate_analogies(vectors, questions)["total"]["correct"] == expected


def test_bad_analogy_files(tmp_path):
    with pytest.raises(MissingInputError):
        evaluate_analogies(country_capital_vectors(), tmp_path / "none.txt")
    with pytest.raises(InputDataError, match="nothing.txt"):
        evaluate_analogies(country_capital_vectors(), write(tmp_path / "nothing.txt", "hello\n: s\n"))
    with pytest.raises(InputDataError, match="before the first"):
        read_analogies(write(tmp_path / "nohead.txt", "a b c d\n"))


def test_google_questions_file_parses():
    path = os.path.join(SHARED_EVAL, "questions-words.txt")
    if not os.path.exists(path):
        pytest.skip("shared questions-words.txt not present")
    sections = read_analogies(path)
    assert len(sections) == 14
    assert sum(len(q) for _, q in sections) == 19544
    assert sum(1 for name, _ in sections if name.startswith("gram")) == 9


# ---------------------------------------------------------------------------
# word pairs


def test_average_ranks_ties():
    np.testing.assert_array_equal(average_ranks([10, 20, 10, 30, 20, 20]),
                                  [1.5, 4, 1.5, 6, 4, 4])


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.integers(0, 8, size=40).astype(float)
        y = x + rng.integers(0, 5, size=40)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


PAIRS = """\
# a comment line
# Word 1\tWord 2\tHuman (mean)
cat\tdog\t9.0

Cat\tcar\t2.0
dog\tcar\t3.0
the\tcat\t5.0
cat\tunicorn\t8.0
"""


def pair_vectors():
    words = ["the", "cat", "dog", "car"]
    matrix = np.array([[1, 1, 1], [1, 0.1, 0], [0.9, 0.2, 0], [0, 0.3, 2]], dtype=np.float32)
    return Vectors(words, matrix)


def test_evaluate_pairs(tmp_path):
    vectors = pair_vectors()
    result = evaluate_pairs(vectors, write(tmp_path / "mysim.tsv", PAIRS))
    assert result["name"] == "mysim"
    assert result["pairs"] == 4 and result["oov"] == 1
    assert result["oov_ratio"] == pytest.approx(1 / 5)
    cosines = [vectors.similarity(a, b) for a, b in
               [("cat", "dog"), ("cat", "car"), ("dog", "car"), ("the", "cat")]]
    human = [9.0, 2.0, 3.0, 5.0]
    assert result["spearman"] == pytest.approx(spearman(cosines, human))
    assert result["pearson"] == pytest.approx(np.corrcoef(cosines, human)[0, 1])
    assert result["spearman"] == pytest.approx(1.0)  # the vectors rank pairs as people do


def test_evaluate_pairs_case_sensitive(tmp_path):
    result = evaluate_pairs(pair_vectors(), write(tmp_path / "p.tsv", PAIRS), case_insensitive=False)
    assert result["oov"] == 2  # "Cat" is unknown too


def test_bad_pair_files(tmp_path):
    with pytest.raises(MissingInputError):
        evaluate_pairs(pair_vectors(), tmp_path / "none.tsv")
    with pytest.raises(InputDataError, match="junk.tsv"):
        evaluate_pairs(pair_vectors(), write(tmp_path / "junk.tsv", "# only\nword1 word2 score\n"))


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
def test_shared_pair_files_parse(name):
    from bigw2v.evaluate import read_pairs

    path = os.path.join(SHARED_EVAL, name)
    if not os.path.exists(path):
        pytest.skip(f"shared {name} not present")
    assert len(read_pairs(path)) == {"wordsim353.tsv": 353, "simlex999.txt": 999}[name]


def test_format_report(tmp_path):
    analogies = evaluate_analogies(country_capital_vectors(), write(tmp_path / "q.txt", QUESTIONS))
    pairs = evaluate_pairs(pair_vectors(), write(tmp_path / "mysim.tsv", PAIRS))
    report = format_report(analogies, [pairs])
    assert "capital-common-countries" in report and "100.0%" in report
    assert "syntactic" in report and "total" in report
    assert "mysim" in report and "1.000" in report
    assert format_report(None, [pairs]).startswith("Word pairs")
    empty = evaluate_analogies(country_capital_vectors(), write(tmp_path / "e.txt", ": s\nx y z w\nFrance Paris Germany Berlin\n"),
                               restrict_vocab=1)
    assert "-" in format_report(empty)  # undefined accuracy shown as a dash
