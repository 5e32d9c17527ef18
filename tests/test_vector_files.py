"""Vectors other tools made or read (issue 18): word2vec files in (any format, compressed,
--limit, --init-from), gensim and Parquet out, batch queries, bad input, export targets."""

import bz2
import gzip
import json
import lzma
import os
import random
import stat
import subprocess
import sys

import numpy as np
import pytest

import bigw2v
from bigw2v import cli
from bigw2v.errors import InputDataError, UsageError
from bigw2v.vectors import Vectors, load, load_word2vec_format, save_parquet, save_word2vec_format
from bigw2v.warmstart import warm_start

COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def random_vectors(count=300, dim=7, seed=0, counts=True, extremes=True):
    rng = np.random.default_rng(seed)
    words = ["</s>"] + [f"w{i}" for i in range(count - 3)] + ["café", "日本"]
    matrix = rng.normal(size=(count, dim)).astype(np.float32)
    if extremes:  # float32's extremes and denormals must survive every format
        special = [1e-38, -3.4e38, 1.17549435e-38, 0.1, -0.0, 1 / 3, 7e-45][:dim]
        matrix[3, :len(special)] = special
    return Vectors(words, matrix, np.arange(count, 0, -1) * 10 if counts else None)


def cli_json(capsys, *args):
    """Run the CLI in this process; (exit code, parsed stdout)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def run_all(*commands):
    """Run several `bigw2v` commands in parallel subprocesses: their CompletedProcess."""
    procs = [subprocess.Popen([sys.executable, "-m", "bigw2v", *map(str, c)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in commands]
    done = []
    for command, p in zip(commands, procs):
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(command, p.returncode, out,
                                                err.decode("utf-8", "replace")))
    return done


@pytest.fixture(scope="module")
def model(planted_workdir, tmp_path_factory):
    workdir, topics, _ = planted_workdir
    path = str(tmp_path_factory.mktemp("vf") / "model")
    bigw2v.train(workdir, path, dim=8, epochs=1, threads=1, seed=3, progress=False,
                 checkpoint_every=0)
    return path, topics


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["binary", "text"])
def test_gensim_reads_every_export(model, tmp_path, capsys, fmt):
    gensim_models = pytest.importorskip("gensim.models")
    path, _ = model
    out = tmp_path / f"v.{fmt}"
    assert cli_json(capsys, "export", path, "-o", out, "--format", fmt)[0] == 0
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(out), binary=fmt == "binary")
    ours = load(path)
    assert kv.index_to_key == ours.words
    np.testing.assert_array_equal(kv.vectors, np.asarray(ours.vectors))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
def test_we_read_gensims_files_compressed_and_limited(tmp_path, binary, suffix):
    gensim_models = pytest.importorskip("gensim.models")
    v = random_vectors()
    kv = gensim_models.KeyedVectors(v.dim)
    kv.add_vectors(v.words, v.vectors)
    plain = tmp_path / "g.out"
    kv.save_word2vec_format(str(plain), binary=binary)
    path = tmp_path / ("g.data" + suffix)  # the name says nothing: content decides
    if suffix:
        path.write_bytes(COMPRESSORS[suffix](plain.read_bytes()))
    else:
        path = plain
    back = load(str(path))
    assert back.words == v.words and back.counts is None
    np.testing.assert_array_equal(back.vectors, v.vectors)
    limited = bigw2v.load(str(path), limit=17)
    theirs = gensim_models.KeyedVectors.load_word2vec_format(str(plain), binary=binary,
                                                             limit=17)
    assert limited.words == theirs.index_to_key == v.words[:17]
    np.testing.assert_array_equal(limited.vectors, theirs.vectors)


def test_parquet_export_read_by_duckdb_polars_and_us(model, tmp_path, capsys):
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    path, _ = model
    out = tmp_path / "v.parquet"
    assert cli_json(capsys, "export", path, "-o", out, "--format", "parquet")[0] == 0
    ours = load(path)
    matrix = np.asarray(ours.vectors)

    df = pl.read_parquet(out)
    assert df.schema["word"] == pl.String and df.schema["count"] == pl.Int64
    assert df.schema["vector"] == pl.Array(pl.Float32, ours.dim)
    assert df["word"].to_list() == ours.words
    assert df["count"].to_list() == ours.counts.tolist()
    np.testing.assert_array_equal(df["vector"].to_numpy(), matrix)

    rows = duckdb.sql(f"SELECT word, count, vector FROM '{out}'").fetchall()
    assert [r[0] for r in rows] == ours.words
    assert [r[1] for r in rows] == ours.counts.tolist()
    np.testing.assert_array_equal(np.array([r[2] for r in rows], dtype=np.float32), matrix)
    # Row groups of a given size, and unknown counts as nulls.
    v = random_vectors(counts=False)
    save_parquet(v, tmp_path / "nocounts.parquet", rows_per_group=100)
    import pyarrow.parquet as pq
    assert pq.ParquetFile(tmp_path / "nocounts.parquet").metadata.num_row_groups == 3
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'nocounts.parquet'}' "
                      "WHERE count IS NULL").fetchall()[0][0] == len(v)
    back = load(str(tmp_path / "nocounts.parquet"))
    assert back.words == v.words and back.counts is None
    np.testing.assert_array_equal(back.vectors, v.vectors)
    assert load(str(out), limit=5).words == ours.words[:5]


def test_eval_on_an_export_equals_eval_on_the_model(model, tmp_path, capsys):
    path, topics = model
    questions = tmp_path / "q.txt"
    lines = [": topics"] + [f"{a[i]} {a[i + 1]} {b[i]} {b[i + 1]}"
                            for a, b in zip(topics, topics[1:]) for i in range(0, 8, 2)]
    questions.write_text("\n".join(lines) + "\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a[0]}\t{a[i]}\t{10 - i}\n{a[0]}\t{b[i]}\t{i}\n"
                             for a, b in zip(topics, topics[1:]) for i in range(1, 5)))
    evaluate = ["--analogies", questions, "--pairs", pairs, "--json"]
    code, expected = cli_json(capsys, "eval", path, *evaluate)
    assert code == 0 and expected["analogies"]["total"]["answered"] == len(lines) - 1
    for fmt in ("binary", "text", "parquet"):
        out = tmp_path / f"export.{fmt}"
        assert cli_json(capsys, "export", path, "-o", out, "--format", fmt)[0] == 0
        assert cli_json(capsys, "eval", out, *evaluate) == (0, expected), fmt


def test_limit_everywhere(model, tmp_path, capsys):
    path, topics = model
    full = load(path)
    out = tmp_path / "v.bin"
    save_word2vec_format(full, out)
    for source in (path, str(out)):
        v = load(source, limit=10)
        assert v.words == full.words[:10] and v.vectors.shape == (10, full.dim)
        np.testing.assert_array_equal(v.vectors, np.asarray(full.vectors[:10]))
    assert len(load(str(out), limit=0)) == 0
    assert len(load(str(out), limit=10 ** 9)) == len(full)
    word = full.words[3]
    capsys.readouterr()
    assert cli.main(["similar", str(out), word, "--limit", "10", "-n", "20"]) == 0
    shown = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert sorted(shown) == sorted(full.words[:10][:3] + full.words[4:10])
    with pytest.raises(UsageError):
        load(path, limit=-1)


# ---------------------------------------------------------------- reading, in detail


def test_text_numbers_parse_as_pythons_float(tmp_path):
    """The compiled number parser gives Python's float(), rounded to float32, for every
    form: %.9g, %f, exponents, long digit strings, nan/inf, signs, denormals."""
    rng = random.Random(1)
    forms = ["%.9g", "%.17g", "%f", "%.3e", "%.25f", "%g", "%.0f", "%.1E", "%+.6f", "%.20e"]
    odd = ["nan", "-inf", "inf", "Infinity", "-0", "+0.0", "1.", ".5", "-.5e-3", "0e0", "00012",
           "1e+22", "1e23", "9007199254740993", "123456789012345678901234", "1e-22", "1e-23",
           "4.9e-324", "3.4028235e38", "1e39"]
    dim, count = 40, 400
    rows = []
    for _ in range(count):
        row = []
        for _ in range(dim):
            if rng.random() < 0.05:
                row.append(rng.choice(odd))
            else:
                x = rng.choice([rng.uniform(-1, 1), rng.gauss(0, 1e-3),
                                rng.uniform(-1e30, 1e30), 10 ** rng.uniform(-45, 38)])
                row.append(rng.choice(forms) % x)
        rows.append(row)
    path = tmp_path / "nums.vec"
    with open(path, "w") as f:
        f.write(f"{count} {dim}\n")
        f.writelines(f"w{i} {' '.join(r)}\n" for i, r in enumerate(rows))
    with np.errstate(over="ignore"):
        expected = np.array([[float(x) for x in r] for r in rows]).astype(np.float32)
    got = load(str(path)).vectors
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), [rows[i][j] for i, j in np.argwhere(~same)[:5]]
    assert np.array_equal(np.signbit(got), np.signbit(expected))  # -0 stays -0


def test_odd_but_valid_files(tmp_path):
    # Text: CRLF, blank lines, tabs, trailing spaces (the C tool), no final newline.
    text = tmp_path / "odd.txt"
    text.write_bytes(b"3 2\r\n\r\nthe 1 2 \r\na\t-1.5\t0\n\nz 0.25 1e-3")
    v = load(str(text))
    assert v.words == ["the", "a", "z"]
    np.testing.assert_array_equal(v.vectors, np.float32([[1, 2], [-1.5, 0], [0.25, 1e-3]]))
    # Binary: the C tool's newlines, none (gensim), invalid UTF-8 and a NUL inside a word.
    rows = np.float32([[1, 2], [3, 4], [5, 6]])
    data = (b"3 2\n" + b"ab " + rows[0].tobytes() + b"\n" + b"caf\xe9 " + rows[1].tobytes()
            + b"x\0y " + rows[2].tobytes())
    binary = tmp_path / "odd.bin"
    binary.write_bytes(data)
    v = load(str(binary))
    assert v.words == ["ab", "caf\ufffd", "x\0y"]
    np.testing.assert_array_equal(v.vectors, rows)


def test_words_decode_per_block_as_one_by_one(tmp_path):
    """Words are decoded a block at a time: the same strings as decoding each alone."""
    rng = np.random.default_rng(5)
    raw = [bytes(rng.integers(33, 256, size=rng.integers(1, 12), dtype=np.uint8))
           for _ in range(2000)]
    rows = rng.normal(size=(len(raw), 3)).astype(np.float32)
    path = tmp_path / "bytes.bin"
    path.write_bytes(f"{len(raw)} 3\n".encode()
                     + b"".join(w + b" " + r.tobytes() + b"\n" for w, r in zip(raw, rows)))
    v = load_word2vec_format(str(path))
    assert v.words == [w.decode("utf-8", "replace") for w in raw]
    np.testing.assert_array_equal(v.vectors, rows)


def test_loading_a_binary_needs_its_matrix_not_twice(tmp_path):
    """Peak memory, measured in a child process: about the matrix, not file + matrix."""
    rows, dim = 40000, 300
    path = tmp_path / "big.bin"
    rng = np.random.default_rng(0)
    save_word2vec_format(Vectors([f"w{i}" for i in range(rows)],
                                 rng.normal(size=(rows, dim)).astype(np.float32)), path)
    # VmHWM (this process's peak since exec), not ru_maxrss: Linux carries the
    # forking parent's (pytest's) peak into a child's ru_maxrss.
    code = ("import sys, numpy\n"
            "from bigw2v.vectors import load\n"
            "def peak():\n"
            "    with open('/proc/self/status') as f:\n"
            "        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
            "before = peak()\n"
            "v = load(sys.argv[1])\n"
            "print((peak() - before) * 1024, v.vectors.nbytes)\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    grew, matrix = map(int, r.stdout.split())
    # The matrix, the words (~200 bytes each with their index) and a 4 MB buffer.
    assert grew < matrix + 200 * rows + 16 * 2**20, (grew, matrix)


# ---------------------------------------------------------------- warm start from a file


def test_warm_start_from_files(tmp_path):
    v = random_vectors()
    new_words = ["w5", "nothere", "café", "w0", "alsonew", "w5x"]
    # A word held twice: its first row counts.
    dup = Vectors(v.words + ["w0"], np.vstack([v.vectors, np.full((1, v.dim), 9, np.float32)]))
    for binary, name in ((True, "v.bin"), (False, "v.vec.gz")):
        path = tmp_path / name
        save_word2vec_format(dup, path, binary=binary)
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(path.read_bytes()))
        fresh = np.full((len(new_words), v.dim), -7, np.float32)
        summary = warm_start(str(path), new_words, v.dim, fresh, None)
        assert summary["known_words"] == 3 and summary["new_words"] == 3
        assert summary["old_vocab_size"] == len(dup) and not summary["output_vectors_copied"]
        for i, w in enumerate(new_words):
            expected = v[w] if w in v else np.full(v.dim, -7, np.float32)
            np.testing.assert_array_equal(fresh[i], expected)
    with pytest.raises(UsageError, match=r"dim 7.*--dim 8"):
        warm_start(str(tmp_path / "v.bin"), new_words, 8, np.zeros((6, 8), np.float32), None)


def test_train_init_from_a_word2vec_file(planted_workdir, tmp_path):
    workdir, topics, _ = planted_workdir
    rng = np.random.default_rng(1)
    known = [w for t in topics for w in t[:6]]
    words = known + ["unseen1", "unseen2"]
    source = Vectors(words, rng.normal(size=(len(words), 8)).astype(np.float32))
    path = tmp_path / "pretrained.bin"
    save_word2vec_format(source, path)
    model = tmp_path / "m"
    # Learning rate ~0: the known words keep their file vectors.
    info = bigw2v.train(workdir, str(model), dim=8, epochs=1, threads=1, alpha=1e-12,
                        min_alpha=1e-12, init_from=str(path), progress=False,
                        checkpoint_every=0)
    warm = json.loads((model / "model.json").read_text())["warm_start"]
    assert warm == info["warm_start"]
    assert warm["known_words"] == len(known) and warm["old_vocab_size"] == len(words)
    assert warm["source"] == "word2vec binary file"
    trained = load(str(model))
    assert warm["new_words"] == len(trained) - len(known)
    for w in known:
        np.testing.assert_allclose(trained[w], source[w], atol=1e-6)
    other = next(w for w in trained.words if w not in source)
    assert not np.allclose(trained[other], 0)  # a new word: the usual random start


# ---------------------------------------------------------------- queries


def same_answers(a, b):
    """The same words in the same order, cosines equal up to float32 rounding (a batch's
    matrix product may add in another order than one query's)."""
    assert [w for w, _ in a] == [w for w, _ in b]
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("score_floats", [None, 1000])
def test_most_similar_batch_equals_one_at_a_time(monkeypatch, score_floats):
    if score_floats:  # passes of 2 queries each over the 500 rows
        monkeypatch.setattr("bigw2v.vectors.SCORE_FLOATS", score_floats)
    v = random_vectors(count=500, dim=16, seed=2, extremes=False)
    queries = ["w1", "café", ["w2", "w3"], (["w4"], ["w5"]), "w1"]
    batch = v.most_similar_batch(queries, topn=7)
    single = [v.most_similar("w1", topn=7), v.most_similar("café", topn=7),
              v.most_similar(["w2", "w3"], topn=7),
              v.most_similar(positive=["w4"], negative=["w5"], topn=7),
              v.most_similar("w1", topn=7)]
    assert len(batch) == len(single)
    for b, s in zip(batch, single):
        same_answers(b, s)
    restricted = v.most_similar_batch(["w1", "w300"], topn=5, restrict_vocab=50)
    same_answers(restricted[0], v.most_similar("w1", topn=5, restrict_vocab=50))
    assert all(v.index(w) < 50 for w, _ in restricted[1])
    assert v.most_similar_batch([]) == []
    # Cosines as with normalised vectors (the cached-unit-matrix way).
    unit = v.unit_vectors()
    q = unit[v.index("w1")]
    best = batch[0][0]
    assert best[1] == pytest.approx(float(unit[v.index(best[0])] @ q), rel=1e-5)


def test_to_gensim():
    gensim_models = pytest.importorskip("gensim.models")
    v = random_vectors(count=200, dim=12, seed=4, extremes=False)
    kv = v.to_gensim()
    assert isinstance(kv, gensim_models.KeyedVectors)
    assert kv.index_to_key == v.words and kv.get_vecattr("w5", "count") == v.counts[v.index("w5")]
    np.testing.assert_array_equal(kv.vectors, v.vectors)
    assert [w for w, _ in kv.most_similar("w7", topn=5)] == \
        [w for w, _ in v.most_similar("w7", topn=5)]


# ---------------------------------------------------------------- bad input, through the CLI


def test_bad_files_are_one_line_errors(tmp_path, planted_workdir):
    workdir, _, _ = planted_workdir
    v = random_vectors(count=50)
    good = tmp_path / "good.bin"
    save_word2vec_format(v, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[:-20])
    more_promised = tmp_path / "more.bin"
    more_promised.write_bytes(b"5000 7" + data[data.index(b"\n"):])
    fewer_promised = tmp_path / "fewer.bin"
    fewer_promised.write_bytes(b"20 7" + data[data.index(b"\n"):])
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("3 2\na 1 2\nb 1 2 3\nc 1 2\n")
    not_number = tmp_path / "nan.txt"
    not_number.write_text("2 2\na 1 2\n\nb 1 x2\n")
    wrong_dim = tmp_path / "dim.txt"
    wrong_dim.write_text("2 3\nalpha 1.25 2.5\nbeta 1.25 2.5\n")
    compressed = tmp_path / "cut.bin.gz"
    compressed.write_bytes(gzip.compress(data)[:-30])
    cases = [
        (["similar", truncated, "w1"], 65, "truncated.bin: record 50: truncated"),
        (["similar", more_promised, "w1"], 65, "more.bin: line 1: the header promises 5,000"),
        (["similar", fewer_promised, "w1"], 65, "fewer.bin: record 21: the header promises 20"),
        (["eval", ragged, "--analogies", ragged], 65,
         "ragged.txt: line 3: expected a word and 2 numbers (the header's dim), got 3"),
        (["export", not_number, "-o", tmp_path / "x.bin"], 65,
         "nan.txt: line 4: 'x2' is not a number"),
        (["similar", compressed, "w1"], 65, "cut.bin.gz: "),
        (["similar", wrong_dim, "a"], 65,
         "dim.txt: line 2: expected a word and 3 numbers (the header's dim), got 2"),
        (["train", workdir, "-o", tmp_path / "m", "--dim", "8", "--init-from", good], 64,
         f"--init-from {good} has vectors of dim 7, this run has --dim 8"),
    ]
    for (args, code, message), r in zip(cases, run_all(*[c[0] for c in cases])):
        assert r.returncode == code, (args, r.stderr)
        assert "Traceback" not in r.stderr and message in r.stderr, (message, r.stderr)
        errors = [line for line in r.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1, r.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.bin").exists()
    # The library raises the same, as InputDataError.
    with pytest.raises(InputDataError, match="truncated"):
        load(str(truncated))


# ---------------------------------------------------------------- export targets (issue 20)


def test_export_targets(model, tmp_path):
    path, _ = model
    ours = load(path)
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real.name)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    full, stdout, through_link, through_fifo, directory = run_all(
        ["export", path, "-o", "/dev/full"],
        ["export", path, "-o", "-", "--format", "text"],
        ["export", path, "-o", link],
        ["export", path, "-o", fifo],
        ["export", path, "-o", tmp_path])
    from_fifo = reader.communicate(timeout=60)[0]
    assert full.returncode == 74 and "no space left on device" in full.stderr, full.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # still the device
    assert stdout.returncode == 0 and not (tmp_path / "-").exists()
    assert stdout.stdout.decode().splitlines()[0] == f"{len(ours)} {ours.dim}"
    assert through_link.returncode == 0 and link.is_symlink()  # the link stays a link
    assert load(str(real)).words == ours.words
    assert through_fifo.returncode == 0 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert from_fifo == real.read_bytes()
    assert directory.returncode == 73 and "is a directory" in directory.stderr
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link.bin", "real.bin"]  # no temp files


@pytest.mark.parametrize("compress", [False, True])
def test_load_from_a_pipe(tmp_path, compress):
    """A FIFO (or /dev/stdin) is read once, as a stream: no seek, no size check."""
    v = random_vectors()
    path = tmp_path / "v.bin"
    save_word2vec_format(v, path)
    if compress:
        path.write_bytes(gzip.compress(path.read_bytes()))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat '{path}' > '{fifo}'"])
    try:
        back = load(str(fifo), limit=None)
    finally:
        writer.wait(timeout=60)
    assert back.words == v.words
    np.testing.assert_array_equal(back.vectors, v.vectors)
