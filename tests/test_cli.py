"""The command line as a user meets it: real subprocesses, exit codes, messages."""

import json
import subprocess
from collections import Counter
import sys
import time

import numpy as np
import pytest

from bigw2v import load
from bigw2v.corpus import canonical_word, split_words
from bigw2v.workdir import read_vocab
from conftest import planted_topics


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "bigw2v", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    topics, text = planted_topics(n_sentences=2000)
    corpus = root / "corpus.txt"
    corpus.write_text(text)
    r = run("count", corpus, "-o", root / "work", "--min-count", "2", "--threads", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["tokens"] == 2000 * 12
    started = time.time()
    r = run("train", root / "work", "-o", root / "model", "--dim", "16", "--epochs", "3",
            "--sample", "0", "--json", "--quiet")
    wall = time.time() - started
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["complete"] and summary["settings"]["dim"] == 16
    # Start-up runs from the process's start (10 ms clock) to the first batch, encoding included.
    figures = summary["figures"]
    assert figures["encode_seconds"] <= figures["startup_seconds"] <= wall + 0.02
    assert "trained sg dim 16" in r.stderr
    return root, topics


def test_similar_and_analogy_print_neighbours(trained):
    root, topics = trained
    r = run("similar", root / "model", topics[0][0], "-n", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.split()[1].startswith("t0w") for line in lines)
    a, b, c = topics[0][0], topics[0][1], topics[1][0]
    r = run("analogy", root / "model", a, b, c, "-n", "3")
    assert r.returncode == 0, r.stderr
    shown = [line.split() for line in r.stdout.strip().splitlines()]
    # The library's answer, printed: b - a + c stays in c's topic, the three words excluded.
    expected = load(str(root / "model")).analogy(a, b, c, topn=3)
    assert shown == [[f"{score:.4f}", word] for word, score in expected]
    answers = [word for _, word in shown]
    assert all(w in topics[1] for w in answers) and c not in answers, shown
    scores = [float(s) for s, _ in shown]
    assert scores == sorted(scores, reverse=True)


def test_unknown_word_is_a_clear_error(trained):
    root, _ = trained
    r = run("similar", root / "model", "zebra")
    assert r.returncode == 65 and "zebra" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("fmt", ["binary", "text"])
def test_export_is_read_by_gensim_with_the_same_vectors(trained, fmt):
    gensim_models = pytest.importorskip("gensim.models")
    from bigw2v import load
    root, _ = trained
    out = root / f"vectors.{fmt}"
    r = run("export", root / "model", "-o", out, "--format", fmt)
    assert r.returncode == 0, r.stderr
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(out), binary=fmt == "binary")
    ours = load(str(root / "model"))
    assert kv.index_to_key == ours.words
    np.testing.assert_array_equal(kv.vectors, np.asarray(ours.vectors))


def test_eval_reports_analogies_and_pairs(trained, tmp_path):
    root, topics = trained
    questions = tmp_path / "q.txt"
    t0, t1 = topics[0], topics[1]
    questions.write_text(f": topics\n{t0[0]} {t0[1]} {t1[0]} {t1[1]}\n{t0[0]} {t0[1]} nope {t1[1]}\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"# w1\tw2\tscore\n{t0[0]}\t{t0[1]}\t9\n{t0[0]}\t{t1[0]}\t1\n"
                     f"{t1[2]}\t{t1[3]}\t8\n{t0[2]}\t{t1[4]}\t2\n")
    r = run("eval", root / "model", "--analogies", questions, "--pairs", pairs, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["analogies"]["total"]["answered"] == 1
    assert result["analogies"]["total"]["skipped"] == 1
    assert result["pairs"][0]["pairs"] == 4 and result["pairs"][0]["spearman"] > 0.5


def test_help_explains_every_command():
    r = run("--help")
    assert r.returncode == 0
    for command in ("count", "train", "similar", "analogy", "export", "eval"):
        assert command in r.stdout
    r = run("train", "--help")
    assert "--negative" in r.stdout and "default 5" in r.stdout


@pytest.mark.parametrize("make,code,message", [
    (lambda d: d / "missing.txt", 66, "no such file"),
    (lambda d: (d / "empty.txt").write_bytes(b"") and d / "empty.txt" or d / "empty.txt", 65,
     "no words"),
    (lambda d: (d / "blank.txt").write_bytes(b" \n\t\r\n") and d / "blank.txt", 65, "no words"),
    (lambda d: (d / "emptydir").mkdir() or d / "emptydir", 65, "emptydir"),
])
def test_bad_corpus_gives_one_clear_message(tmp_path, make, code, message):
    path = make(tmp_path)
    r = run("count", path, "-o", tmp_path / "work")
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "work" / "count.json").exists()


def test_binary_garbage_counts_without_crashing(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    r = run("count", garbage, "-o", tmp_path / "work", "--min-count", "1")
    assert r.returncode == 0, r.stderr
    # Counted as the rule says: the Python reference (split on the four separators,
    # canonical words: invalid UTF-8 replaced, long words cut) gives the same vocabulary.
    expected = Counter(canonical_word(w) for w in split_words(garbage.read_bytes()))
    words, counts = read_vocab(str(tmp_path / "work"))
    assert dict(zip(words, counts.tolist())) == expected
    assert len(expected) > 1000 and "\ufffd" in "".join(expected)  # garbage indeed


def test_empty_vocabulary_after_min_count_is_an_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("every word here is unique\n")
    r = run("count", corpus, "-o", tmp_path / "work", "--min-count", "2")
    assert r.returncode == 65 and "--min-count" in r.stderr


@pytest.mark.parametrize("args,code", [
    (["--dim", "0"], 64), (["--dim", "ten"], 64), (["--negative", "0"], 64),
    (["--sample", "2"], 64), (["--model", "glove"], 64), (["--alpha", "0"], 64),
    (["--dim"], 2),
])
def test_bad_training_options_are_refused(trained, tmp_path, args, code):
    root, _ = trained
    r = run("train", root / "work", "-o", tmp_path / "m", *args)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and "error" in r.stderr


def test_train_on_a_workdir_that_was_never_counted(tmp_path):
    r = run("train", tmp_path, "-o", tmp_path / "m")
    assert r.returncode == 66 and "bigw2v count" in r.stderr


def test_unwritable_output_is_reported(trained, tmp_path):
    root, _ = trained
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("train", root / "work", "-o", blocker / "model", "--quiet")
    assert r.returncode == 73 and "Traceback" not in r.stderr
    r = run("count", root / "corpus.txt", "-o", blocker / "work")
    assert r.returncode == 73 and "Traceback" not in r.stderr


def test_loading_something_that_is_not_a_model(tmp_path):
    r = run("similar", tmp_path, "word")
    assert r.returncode == 66 and "not a bigw2v model" in r.stderr


def test_the_command_keeps_numba_from_importing_scipy_linear_algebra():
    """cli.run marks scipy.linalg.cython_blas missing before Numba starts (0.1 s of
    start-up); Numba still loads and runs a compiled kernel."""
    pytest.importorskip("scipy.linalg")
    script = ("import sys\n"
              "from bigw2v import cli\n"
              "cli._skip_numba_blas_probe()\n"
              "from bigw2v.wordtable import WordTable\n"
              "table = WordTable.from_words(['a', 'b'], None)\n"
              "import numpy as np\n"
              "ids, _ = table.encode_block(np.frombuffer(b'b a c b', np.uint8))\n"
              "print(ids.tolist(), 'scipy.linalg' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["[1,", "0,", "1]", "False"]


def test_output_written_during_ray_work_goes_to_stderr_not_into_the_json():
    """With --ray, stdout carries only the result: writes to descriptor 1 meanwhile, the
    process's own or a child's (as a raylet's), land on stderr."""
    script = ("import json, os, subprocess, sys\n"
              "from bigw2v import cli\n"
              "with cli._stray_output_to_stderr(True):\n"
              "    os.write(1, b'stray from the driver\\n')\n"
              "    subprocess.run([sys.executable, '-c', 'print(\"from a child\")'], check=True)\n"
              "print(json.dumps({'result': 1}))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       check=True)
    assert json.loads(r.stdout) == {"result": 1}
    assert "stray from the driver" in r.stderr and "from a child" in r.stderr
