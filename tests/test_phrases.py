"""bigw2v phrases: word2phrase's result (against a plain-Python reference), greedy joining,
line breaks, exact counts across spills, incremental counts, --write-text, npmi,
connectors, train on the joined corpus, and the command line's errors."""

import json
import math
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from bigw2v.counter import count
from bigw2v.pairs import MAX_CONNECTORS, count_pairs
from bigw2v.phraser import phrases, write_text_file


def reference_word2phrase(lines, threshold, min_count=5, delimiter="_"):
    """word2phrase.c's pass in plain Python, over lists of words (a list per line).

    As the C tool: train_words counts every word; a word or pair under min_count
    scores 0; score = (n_ab - min_count) / n_a / n_b * train_words in float32
    (the C tool's ``real``), joined when > threshold, greedily left to right.
    Pairs are counted within lines (word2phrase.c's counting loop means to reset at
    a line break; its ``start`` flag is cleared before it is read, see docs/quality.md).
    """
    f32 = np.float32
    words = Counter(w for line in lines for w in line)
    pairs = Counter((a, b) for line in lines for a, b in zip(line, line[1:]))
    train_words = sum(words.values())
    out = []
    for line in lines:
        new, can_start = [], False
        for i, w in enumerate(line):
            joined = False
            if i and can_start:
                a = line[i - 1]
                pa, pb, pab = words[a], words[w], pairs[(a, w)]
                if pa >= min_count and pb >= min_count and pab >= min_count:
                    score = f32(f32(pab - min_count) / f32(pa)) / f32(pb) * f32(train_words)
                    joined = score > f32(threshold)
            if joined:
                new[-1] = new[-1] + delimiter + w
                can_start = False
            else:
                new.append(w)
                can_start = True
        out.append(new)
    return out


def generated_lines(n_lines=1500, seed=3):
    """Zipf-ish words with planted phrases (and phrases of phrases), rare words, lines."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(300)]
    weights = 1.0 / np.arange(1, 301)
    weights /= weights.sum()
    planted = [["new", "york"], ["new", "york", "times"], ["san", "francisco"],
               ["los", "angeles", "lakers"], ["york", "minster"], ["bank", "of", "america"],
               ["of", "the"]]
    lines = []
    for _ in range(n_lines):
        line = []
        for _ in range(int(rng.integers(0, 25))):
            r = rng.random()
            if r < 0.08:
                line.extend(planted[int(rng.integers(len(planted)))])
            elif r < 0.1:
                line.append(f"rare{int(rng.integers(100000))}")
            else:
                line.append(vocab[int(rng.choice(300, p=weights))])
        lines.append(line)
    return lines


def write_lines(path, lines):
    path.write_text("".join(" ".join(line) + "\n" for line in lines))


def counted(tmp_path, lines, name="work", min_count=1):
    path = tmp_path / f"{name}.txt"
    write_lines(path, lines)
    workdir = tmp_path / name
    count([str(path)], str(workdir), min_count=min_count, threads=1, progress=False)
    return str(workdir)


def joined_lines(workdir, tmp_path, name="out.txt"):
    out = tmp_path / name
    write_text_file(workdir, str(out))
    return [line.split() for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phrases")
    lines = generated_lines()
    return tmp, lines, counted(tmp, lines)


@pytest.mark.parametrize("thresholds", [[30.0], [30.0, 15.0], [60.0, 20.0, 10.0]])
def test_same_joined_text_as_reference(corpus, tmp_path, thresholds):
    tmp, lines, workdir = corpus
    expected = lines
    for t in thresholds:
        expected = reference_word2phrase(expected, t)
    rec = phrases(workdir, passes=len(thresholds), threshold=thresholds, threads=2,
                  progress=False)
    got = joined_lines(workdir, tmp_path)
    assert got == [line for line in expected if line]  # lines without words are dropped
    assert rec["phrases"] > 0
    assert any(w.count("_") >= 2 for line in got for w in line) or len(thresholds) == 1
    table = pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist()
    distinct = {w for line in got for w in line if "_" in w}
    assert distinct <= {r["phrase"] for r in table}
    row = next(r for r in table if r["phrase"] == "san_francisco")
    assert row["words"] == ["san", "francisco"] and row["pass"] == 1


def test_scores_are_word2phrase_float32(corpus):
    tmp, lines, workdir = corpus
    phrases(workdir, passes=1, threshold=30, progress=False)
    words = Counter(w for line in lines for w in line)
    pairs = Counter((a, b) for line in lines for a, b in zip(line, line[1:]))
    total = sum(words.values())
    f32 = np.float32
    for r in pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist():
        a, b = r["words"]
        assert r["count"] == pairs[(a, b)]
        expected = f32(f32(pairs[(a, b)] - 5) / f32(words[a])) / f32(words[b]) * f32(total)
        assert r["score"] == float(expected)


def test_greedy_and_line_breaks(tmp_path):
    # a b and b c both score high; "a b c" joins a_b and leaves c; x y only meet across
    # a line break and never join.
    lines = [["a", "b", "c"]] * 20 + [["b", "c"]] * 20 + [["q", "x"], ["y", "q"]] * 20
    lines += [[f"f{i}" for i in range(200)]]
    workdir = counted(tmp_path, lines)
    phrases(workdir, passes=1, threshold=1, min_count=5, progress=False)
    got = joined_lines(workdir, tmp_path)
    assert got[0] == ["a_b", "c"] and got[20] == ["b_c"]
    assert not any("x_y" in w for line in got for w in line)
    assert got[40] == ["q_x"] and got[41] == ["y_q"]
    assert got == reference_word2phrase(lines, 1)


def test_exact_across_spills(corpus, tmp_path):
    tmp, lines, workdir = corpus
    fresh = phrases(workdir, passes=2, threshold=[30, 15], progress=False)
    want = pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist()
    want_text = joined_lines(workdir, tmp_path, "a.txt")
    spilled = phrases(workdir, passes=2, threshold=[30, 15], progress=False, threads=2,
                      memory_rows=300, chunk_tokens=1024)
    assert all(p["spills"] > 1 for p in spilled["passes"])
    assert [p["distinct_pairs"] for p in spilled["passes"]] == \
        [p["distinct_pairs"] for p in fresh["passes"]]
    assert pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist() == want
    assert joined_lines(workdir, tmp_path, "b.txt") == want_text


def reference_pair_counts(stream, lines, conn, eligible):
    """Candidate keys counted in plain Python: (hi, lo) -> count (pairs.pair_keys' rule)."""
    got = Counter()
    for s, e in zip(lines[:-1].tolist(), lines[1:].tolist()):
        start, code, ncon = None, 0, 0
        for w in stream[s:e].tolist():
            if conn[w] < 0:
                if start is not None and eligible[start] and eligible[w]:
                    got[(start << 32 | w, code)] += 1
                start, code, ncon = w, 0, 0
            elif start is not None:
                if ncon == MAX_CONNECTORS:
                    start = None
                else:
                    code |= (int(conn[w]) + 1) << (8 * ncon)
                    ncon += 1
    return got


@pytest.mark.parametrize("connectors", [False, True])
def test_pair_counts_exact_in_many_partitions(tmp_path, connectors):
    """A tiny memory budget: hundreds of partitions and many spills, the same exact counts
    as in memory and as a plain-Python count."""
    rng = np.random.default_rng(11)
    n = 30000
    stream = (rng.zipf(1.4, n).clip(max=600) - 1).astype(np.uint32)
    lines = np.unique(np.concatenate([[0], rng.integers(1, n, 500), [n]])).astype(np.int64)
    conn = np.full(600, -1, np.int16)
    if connectors:
        conn[[1, 3, 4]] = [0, 1, 2]
    eligible = ((np.arange(600) % 7 != 0) & (conn < 0)).astype(np.uint8)
    want = reference_pair_counts(stream, lines, conn, eligible)
    max_keys = int(eligible[stream].sum())

    def counted(memory_rows):
        counter = count_pairs(stream, lines, eligible, conn, max_keys, 2,
                              str(tmp_path / f"spill-{memory_rows}"), memory_rows, 1024)
        got = Counter()
        for hi, lo, c in counter.partitions():
            assert np.all(np.diff(hi.astype(np.float64)) >= 0)
            for key in zip(hi.tolist(), lo.tolist(), c.tolist()):
                assert (key[0], key[1]) not in got  # each key in one partition, once
                got[(key[0], key[1])] = key[2]
        figures = (counter.n_partitions, counter.spills)
        counter.close()
        return got, figures

    small, (partitions, spills) = counted(40)
    assert partitions > 100 and spills > 10
    assert small == want
    assert counted(1 << 20) == (want, (1, 0))


def test_incremental_equals_fresh(tmp_path):
    lines = generated_lines(1200, seed=5)
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    write_lines(first, lines[:700])
    work = tmp_path / "grown"
    count([str(first)], str(work), min_count=1, progress=False)
    phrases(str(work), threshold=[30, 15], progress=False)
    write_lines(second, lines[700:])
    count([str(first), str(second)], str(work), min_count=1, progress=False)
    grown = phrases(str(work), threshold=[30, 15], progress=False)
    fresh_dir = tmp_path / "fresh"
    count([str(first), str(second)], str(fresh_dir), min_count=1, progress=False)
    fresh = phrases(str(fresh_dir), threshold=[30, 15], progress=False)
    assert grown["phrase_set"] == fresh["phrase_set"]
    assert not grown["figures"]["encoding_reused"]
    for name in ("phrases.parquet", "phrases/vocab.parquet"):
        assert pq.read_table(work / name).equals(pq.read_table(fresh_dir / name))
    assert np.array_equal(np.load(work / "phrases/tokens.npy"),
                          np.load(fresh_dir / "phrases/tokens.npy"))
    again = phrases(str(work), threshold=[30, 15], progress=False)
    assert again["figures"]["encoding_reused"]


def test_write_text_round_trip(corpus, tmp_path):
    tmp, lines, workdir = corpus
    out = tmp_path / "joined.txt"
    phrases(workdir, threshold=[30, 15], write_text=str(out), progress=False)
    text = [line.split() for line in out.read_text().splitlines()]
    # splitting the phrases gives the corpus back
    assert [[p for w in line for p in w.split("_")] for line in text] == \
        [line for line in lines if line]
    # and counting the written text gives the phrased vocabulary
    again = tmp_path / "again"
    count([str(out)], str(again), min_count=1, progress=False)
    mine = pq.read_table(os.path.join(workdir, "phrases", "vocab.parquet"))
    theirs = pq.read_table(again / "vocab.parquet")
    assert dict(zip(*mine.to_pydict().values())) == dict(zip(*theirs.to_pydict().values()))


def test_npmi(corpus, tmp_path):
    tmp, lines, workdir = corpus
    phrases(workdir, passes=1, threshold=0.5, scorer="npmi", progress=False)
    words = Counter(w for line in lines for w in line)
    pairs = Counter((a, b) for line in lines for a, b in zip(line, line[1:]))
    t = sum(words.values())
    rows = pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist()
    assert "san_francisco" in {r["phrase"] for r in rows}
    for r in rows:
        a, b = r["words"]
        pab, pa, pb = pairs[(a, b)] / t, words[a] / t, words[b] / t
        assert r["score"] == pytest.approx(math.log(pab / (pa * pb)) / -math.log(pab))
        assert 0.5 < r["score"] <= 1


def test_connectors(tmp_path):
    lines = [["bank", "of", "america"], ["the", "bank", "of", "the", "river"],
             ["of", "america", "of"]] * 10 + [[f"f{i}" for i in range(300)]]
    workdir = counted(tmp_path, lines)
    phrases(workdir, passes=1, threshold=1, min_count=5, connectors="en", progress=False)
    got = joined_lines(workdir, tmp_path)
    assert got[0] == ["bank_of_america"]
    phrase_words = {w for line in got for w in line if "_" in w}
    assert all(w.split("_")[0] not in ("of", "the") and w.split("_")[-1] not in ("of", "the")
               for w in phrase_words)
    row = next(r for r in pq.read_table(os.path.join(workdir, "phrases.parquet")).to_pylist()
               if r["phrase"] == "bank_of_america")
    assert row["words"] == ["bank", "of", "america"] and row["count"] == 10
    # without connectors, bank_of_america cannot form in one pass
    phrases(workdir, passes=1, threshold=1, min_count=5, progress=False)
    assert "bank_of_america" not in {w for line in joined_lines(workdir, tmp_path, "b.txt")
                                     for w in line}


def test_train_uses_phrases(corpus, tmp_path):
    from bigw2v.trainer import train
    tmp, lines, workdir = corpus
    rec = phrases(workdir, threshold=[30, 15], progress=False)
    info = train(workdir, str(tmp_path / "model"), progress=False, epochs=1, threads=1,
                 min_count=5, checkpoint_every=0)
    assert info["phrases"]["phrase_set"] == rec["phrase_set"]
    with open(tmp_path / "model" / "model.json") as f:
        assert json.load(f)["phrases"]["phrase_set"] == rec["phrase_set"]
    vocab = pq.read_table(tmp_path / "model" / "vocab.parquet").column("word").to_pylist()
    assert "san_francisco" in vocab


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bigw2v", *map(str, args)],
                          capture_output=True, text=True)


def test_cli(corpus, tmp_path):
    tmp, lines, workdir = corpus
    r = cli("phrases", tmp_path / "nothing")
    assert r.returncode == 66 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for bad in (["--threshold", "abc"], ["--passes", "0"], ["--threshold", "1,2,3"],
                ["--scorer", "npmi", "--threshold", "5"]):
        r = cli("phrases", workdir, *bad)
        assert r.returncode == 64, (bad, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("phrases", workdir, "--threshold", "1e9", "-q")
    assert r.returncode == 0, r.stderr
    summary = [line for line in r.stderr.splitlines() if "train will train on words" in line
               or "tokens after joining" in line]
    assert len(summary) == 1 and summary[0].startswith("0 phrases"), r.stderr  # said once
    r = cli("phrases", workdir, "--threshold", "30,15", "-q", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["phrases"] > 0
    # What was reused and what recomputed is said (the count did not change since).
    assert "reused the corpus's encoding" in r.stderr, r.stderr
