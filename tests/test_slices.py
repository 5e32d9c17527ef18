"""The corpus cut into one slice per Ray training node: parts of a file, and the plan."""

import gzip

import numpy as np
import pytest

from bigw2v import corpus, slices
from bigw2v.counter import count
from bigw2v.encode import encode_slice, input_files
from bigw2v.errors import UsageError
from bigw2v.workdir import read_manifest, read_vocab


def _text(rng, n_words):
    """Words of 1-9 bytes between runs of every separator, some lines long, some empty."""
    words = [("w%d" % rng.integers(50)) * int(rng.integers(1, 4)) for _ in range(n_words)]
    seps = [(" ", "\n", "  ", "\t", "\r\n", "\n\n")[rng.integers(6)] for _ in words]
    return "".join(w + s for w, s in zip(words, seps))


def _words(pieces, block_bytes=4096):
    return [w for piece in pieces for block, _ in corpus.input_blocks(piece, block_bytes)
            for w in bytes(block).split()]


def test_the_parts_of_a_file_read_in_order_give_its_words_once(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "t.txt"
    path.write_text(_text(rng, 4000) + "lastword")  # no separator at the very end
    [inp] = corpus.expand_inputs([str(path)])
    whole = _words([inp])
    assert corpus.splittable(inp)
    for _ in range(40):
        cuts = sorted({0, inp.size, *rng.integers(0, inp.size, rng.integers(1, 6)).tolist()})
        parts = [corpus.FilePart(inp, a, b) for a, b in zip(cuts, cuts[1:])]
        assert _words(parts, int(rng.integers(5, 3000))) == whole
    # A part's progress counts its own bytes, up to (about) its size.
    part = corpus.FilePart(inp, inp.size // 3, 2 * inp.size // 3)
    reads = [read for _, read in corpus.input_blocks(part, 1000)]
    assert reads == sorted(reads) and abs(reads[-1] - part.size) < 30


@pytest.fixture
def counted_files(tmp_path):
    """Five plain files of different sizes and a gzip one, counted: (workdir, manifest)."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, n_words in enumerate((9000, 700, 300, 5000, 1200)):
        (folder / f"{i}.txt").write_text(_text(rng, n_words))
    with gzip.open(folder / "5.gz", "wt") as f:
        f.write(_text(rng, 2000))
    workdir = tmp_path / "work"
    count([str(folder)], str(workdir), min_count=1, threads=1, progress=False)
    return str(workdir), read_manifest(str(workdir))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_slices_are_consecutive_balanced_and_encode_to_the_corpus_once(counted_files, tmp_path,
                                                                       n):
    workdir, manifest = counted_files
    inputs = input_files(manifest, workdir)
    plan = slices.plan(inputs, manifest["inputs"], n)
    total = manifest["totals"]["tokens"]
    assert len(plan) == n and sum(s.words for s in plan) == total
    # the gzip file (2,000 words of 18,200) is never cut; the plain ones may be
    assert all(s.words == pytest.approx(total / n, abs=1100) for s in plan)
    assert sum(isinstance(p, corpus.FilePart) and p.path.endswith(".gz")
               for s in plan for p in s.pieces) == 0
    assert _words([p for s in plan for p in s.pieces]) == _words(inputs)
    # Encoded slice by slice, into token files with room to spare: the corpus's tokens once.
    words, counts = read_vocab(workdir)
    encoded = [encode_slice(list(s.pieces), words, str(tmp_path / f"s{k}"), s.most_tokens,
                            progress=False, at_most=True) for k, s in enumerate(plan)]
    whole = encode_slice(inputs, words, str(tmp_path / "whole"), int(counts.sum()),
                         progress=False)
    assert all(e.n_tokens <= s.most_tokens for e, s in zip(encoded, plan))
    assert np.array_equal(np.concatenate([e.tokens for e in encoded]), whole.tokens)


def test_more_nodes_than_the_corpus_cuts_into_are_refused(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        with gzip.open(folder / f"{i}.gz", "wt") as f:
            f.write("a b c\n" * 100)
    workdir = tmp_path / "work"
    count([str(folder)], str(workdir), min_count=1, threads=1, progress=False)
    manifest = read_manifest(str(workdir))
    inputs = input_files(manifest, str(workdir))
    assert [len(s.pieces) for s in slices.plan(inputs, manifest["inputs"], 2)] == [1, 1]
    with pytest.raises(UsageError, match="at most 2 node"):
        slices.plan(inputs, manifest["inputs"], 3)
