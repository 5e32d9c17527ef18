"""Issue 20, a new user's first hour: no silent overwrite, no stuck runs, plain exit codes.

Real subprocesses where the user meets the behaviour (exit codes, messages).
"""

import json
import os
import subprocess
import sys

import pytest

import bigw2v
from conftest import planted_topics

TINY = ["--dim", "8", "--epochs", "1", "--threads", "1", "--quiet"]


def run(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "bigw2v", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """A counted workdir and a finished model (dim 8) trained on it."""
    root = tmp_path_factory.mktemp("first-hour")
    corpus = root / "corpus.txt"
    corpus.write_text(planted_topics(n_sentences=300)[1])
    work, model = str(root / "work"), str(root / "model")
    bigw2v.count([str(corpus)], work, min_count=1, threads=1, progress=False)
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    return root, work, model


def snapshot(modeldir):
    return {name: open(os.path.join(modeldir, name), "rb").read()
            for name in sorted(os.listdir(modeldir)) if name != ".lock"}


# ---------------------------------------------------------------- item 3


def test_a_finished_model_is_not_replaced_without_force(counted, tmp_path):
    root, work, _ = counted
    model = str(tmp_path / "m")
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    before = snapshot(model)
    r = run("train", work, "-o", model, *TINY, "--seed", "2")
    assert r.returncode == 64, r.stderr
    assert "holds a finished model" in r.stderr and "--force" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert snapshot(model) == before
    # Through a published link: refused, and the message names where the link goes.
    link = str(tmp_path / "latest")
    bigw2v.publish(model, link)
    r = run("train", work, "-o", link, *TINY, "--seed", "2")
    assert r.returncode == 64 and f"a link to {os.path.realpath(model)}" in r.stderr, r.stderr
    assert snapshot(model) == before
    # --resume on a finished model still does nothing and succeeds; --force replaces it.
    bigw2v.train(work, model, resume=True, progress=False)
    assert snapshot(model) == before
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, seed=2, force=True, progress=False)
    after = snapshot(model)
    assert after["vectors.npy"] != before["vectors.npy"]
    assert json.loads(after["model.json"])["settings"]["seed"] == 2


# ---------------------------------------------------------------- item 4


def test_a_mistyped_init_from_leaves_nothing_behind(counted, tmp_path):
    root, work, old = counted
    model = tmp_path / "m"
    r = run("train", work, "-o", model, *TINY, "--init-from", str(old) + "-typo")
    assert r.returncode == 66 and "--init-from" in r.stderr and "Traceback" not in r.stderr
    assert not model.exists()  # not even an empty directory with its .lock
    r = run("train", work, "-o", model, *TINY, "--dim", "9", "--init-from", old)
    assert r.returncode == 64 and "dim 8" in r.stderr and "--dim 9" in r.stderr, r.stderr
    assert not model.exists()
    # Corrected: a plain train works, without --force or --resume.
    info = bigw2v.train(work, str(model), dim=8, epochs=1, init_from=old, progress=False)
    assert info["warm_start"]["known_words"] > 0


def test_a_run_that_fails_before_training_is_not_resumable(counted, tmp_path):
    """A failure after run.json was written (here: the old model's vocabulary is gone when
    the warm start reads it) removes run.json and the weights: the directory does not hold
    an unfinished run that every later call would have to --resume into the same failure."""
    root, work, old = counted
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.json", "vectors.npy", "output_vectors.npy"):
        os.link(os.path.join(old, name), broken / name)  # no vocab.parquet
    model = tmp_path / "m"
    model.mkdir()  # made by the user: it stays, empty
    r = run("train", work, "-o", model, *TINY, "--init-from", broken)
    assert r.returncode == 66 and "vocab.parquet" in r.stderr, r.stderr
    assert os.listdir(model) == [".lock"]
    bigw2v.train(work, str(model), dim=8, epochs=1, progress=False)  # no --force needed
    assert "model.json" in os.listdir(model) and "run.json" not in os.listdir(model)


def test_a_failed_resume_keeps_the_run(counted, tmp_path):
    """Only a new run is cleaned up: a run being resumed keeps its run.json and weights."""
    from bigw2v.errors import InputDataError
    root, work, _ = counted
    model = str(tmp_path / "m")
    bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
    info = json.load(open(os.path.join(model, "model.json")))
    os.remove(os.path.join(model, "model.json"))  # as if killed before the end
    run_record = {"format": "bigw2v-run", "version": 1, "settings": info["settings"],
                  "encoding_key": "not-this-workdir", "workdir": work, "init_from": None,
                  "vocab_size": info["vocab_size"], "corpus_tokens": 1, "started": "x"}
    with open(os.path.join(model, "run.json"), "w") as f:
        json.dump(run_record, f)
    with pytest.raises(InputDataError, match="changed since the run"):
        bigw2v.train(work, model, resume=True, progress=False)
    assert {"run.json", "vectors.npy"} <= set(os.listdir(model))


# ---------------------------------------------------------------- item 7


@pytest.mark.parametrize("args,message", [
    (["--dim", "0"], "argument --dim: must be at least 1: 0"),
    (["--threads", "0"], "argument --threads: must be at least 1: 0"),
    (["--dim", "ten"], "argument --dim: not a whole number: 'ten'"),
    (["--model", "glove"], "argument --model: invalid choice: 'glove'"),
    (["--sample", "2"], "--sample must be in [0, 1)"),
])
def test_a_bad_option_value_is_one_line_and_exit_64(counted, tmp_path, args, message,
                                                    capsys):
    from bigw2v import cli
    root, work, _ = counted
    try:  # in-process (argparse exits through SystemExit): the real process is below
        code = cli.main(["train", work, "-o", str(tmp_path / "m"), *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 64, err
    assert err.startswith("bigw2v train: error: ") and message in err, err
    assert err.count("\n") == 1 and "usage:" not in err
    assert not (tmp_path / "m").exists()  # a rejected train leaves no directory behind


def test_exit_64_and_2_from_a_real_process(counted, tmp_path):
    root, work, _ = counted
    r = run("train", work, "-o", tmp_path / "m", "--threads", "0")
    assert r.returncode == 64 and r.stderr == \
        "bigw2v train: error: argument --threads: must be at least 1: 0\n", r.stderr
    # The shape of the command line (a missing value, an unknown command): argparse's 2.
    for args in (["train", work, "-o", tmp_path / "m", "--dim"], ["bogus"]):
        r = run(*args)
        assert r.returncode == 2 and "usage: bigw2v" in r.stderr, (args, r.stderr)


@pytest.fixture
def small_disk(tmp_path):
    """A 1.7 MB tmpfs (root only); yields (its path, a function that makes it 16 MB)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1700k", "tmpfs", str(mount)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")

    def grow():
        subprocess.run(["mount", "-o", "remount,size=16m", str(mount)], check=True)

    try:
        yield str(mount), grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_while_checkpointing_is_74_and_resumable(counted, small_disk):
    """Weights of 77 words x dim 2000 (two 616 kB matrices) fit; a checkpoint copy does not."""
    root, work, _ = counted
    disk, grow = small_disk
    model = os.path.join(disk, "m")
    r = run("train", work, "-o", model, "--dim", "2000", "--epochs", "2", "--threads", "1",
            "--checkpoint-every", "1e-9", "--no-preflight", "--quiet")
    assert r.returncode == 74, r.stderr
    assert "cannot write checkpoint" in r.stderr and "no space left on device" in r.stderr
    assert "Traceback" not in r.stderr
    assert "run.json" in os.listdir(model)  # training had begun: the run stays resumable
    grow()  # free space, then --resume (docs/cron.md)
    r = run("train", work, "-o", model, "--resume", "--quiet", "--no-preflight")
    assert r.returncode == 0, r.stderr
    assert bigw2v.load(model).dim == 2000


# ---------------------------------------------------------------- item 8


def test_counting_stdin_says_the_workdir_cannot_be_trained_on(tmp_path):
    from bigw2v import cli
    from bigw2v.errors import InputDataError
    work = tmp_path / "w"
    r = run("count", "-", "-o", work, "--min-count", "1", "--quiet", stdin="a b c\na b\n")
    assert r.returncode == 0, r.stderr
    warning = " ".join(line for line in r.stderr.splitlines() if "standard input" in line)
    assert "this workdir cannot be trained on" in warning and "count the file" in warning
    count_help = cli.build_parser()._subparsers._group_actions[0].choices["count"]
    assert "counted from - cannot be trained on" in " ".join(count_help.format_help().split())
    with pytest.raises(InputDataError, match="standard input"):  # as the warning said
        bigw2v.train(str(work), str(tmp_path / "m"), dim=4, progress=False)


# ---------------------------------------------------------------- item 10


def cli_main(*argv):
    """cli.main in this process: (exit code, stdout, stderr) through pytest's capsys."""
    from bigw2v import cli
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's --version, --help and errors
        return e.code


def test_version(capsys):
    assert cli_main("--version") == 0
    assert capsys.readouterr().out == f"bigw2v {bigw2v.__version__}\n"


def test_info_on_a_model_a_link_a_workdir_and_a_run(counted, tmp_path, capsys):
    root, work, model = counted
    link = tmp_path / "latest"
    os.symlink(model, link)
    assert cli_main("info", link, "--json") == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "model" and d["link_to"] == os.path.realpath(model)
    assert d["dim"] == 8 and d["vocab_size"] == len(bigw2v.load(model))
    assert d["settings"]["window"] == 5 and d["figures"]["corpus_tokens"] == 300 * 12
    assert d["files"]["vectors.npy"] == os.path.getsize(os.path.join(model, "vectors.npy"))
    assert d["bytes"] == sum(d["files"].values())
    assert cli_main("info", model) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"model {model}\n  sg, dim 8, {d['vocab_size']} words, 1 epoch\n")
    assert "vectors.npy" in text and "window 5" in text

    assert cli_main("info", work) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"workdir {os.path.abspath(work)}: counted ")
    assert "1 input, 3,600 tokens, 300 sentences" in text and "min-count 1" in text

    unfinished = tmp_path / "run"
    unfinished.mkdir()
    settings = json.load(open(os.path.join(model, "model.json")))["settings"]
    (unfinished / "run.json").write_text(json.dumps(
        {"format": "bigw2v-run", "version": 1, "settings": settings, "workdir": work,
         "vocab_size": 77, "started": "2026-01-01T00:00:00+00:00"}))
    assert cli_main("info", unfinished) == 0
    assert capsys.readouterr().out.startswith(
        f"unfinished run {unfinished}: started 2026-01-01T00:00:00+00:00, no checkpoint yet")

    assert cli_main("info", tmp_path / "latest" / "vectors.npy") == 66
    assert cli_main("info", tmp_path) == 66
    assert "holds no bigw2v model, run or count" in capsys.readouterr().err


def test_similar_help_names_a_model_directory_or_a_file(capsys):
    assert cli_main("similar", "--help") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: bigw2v similar") and " MODEL WORD" in out
    assert "MODELDIR" not in out and ".bin" in out and ".txt" in out


def test_more_threads_than_cores_trains_on_the_cores_and_says_so(counted, tmp_path, caplog):
    from bigw2v.settings import available_cores
    root, work, _ = counted
    info = bigw2v.train(work, str(tmp_path / "m"), dim=8, epochs=1, threads=999,
                        progress=False)
    assert info["settings"]["threads"] == available_cores()
    assert f"--threads 999 is more than the {available_cores()} cores" in caplog.text


def test_one_epoch_one_thread_and_an_up_to_date_count_read_plainly(counted, tmp_path, capsys):
    root, work, _ = counted
    assert cli_main("train", work, "-o", tmp_path / "m", *TINY) == 0
    summary = capsys.readouterr().err
    assert " x 1 epoch in " in summary and ", 1 thread)" in summary, summary
    corpus = root / "corpus.txt"
    assert cli_main("count", corpus, "-o", tmp_path / "w", "--min-count", "1", "-q") == 0
    assert "counted 3.6k words (77 distinct) in 1 input in " in capsys.readouterr().err
    assert cli_main("count", corpus, "-o", tmp_path / "w", "--min-count", "1", "-q") == 0
    err = capsys.readouterr().err
    assert err.startswith("nothing to count: 3.6k words (77 distinct) as counted ")
    assert " in 0." not in err and " s;" not in err  # not the earlier run's time


def test_the_terminal_bar_times_from_its_first_update():
    """The first batch also loads the compiled kernels: it counts as progress, not in
    the rate or the ETA."""
    import io
    from bigw2v.progress import Bar
    now = [0.0]
    bar = Bar(total=100, file=io.StringIO(), mininterval=0, smoothing=0.1, unit="word")
    bar._time = lambda: now[0]
    bar.start_t = bar.last_print_t = 0.0
    now[0] = 10.0  # a first batch of 10 words that took 10 s, mostly compiling
    bar.update(10)
    assert bar.n == 10 and bar.format_dict["rate"] is None
    now[0] = 11.0
    bar.update(10)
    assert bar.format_dict["rate"] == pytest.approx(10.0)  # 10 words in the 1 s since
    assert "00:08" in bar.__str__()  # 80 words left at 10 words/s


def test_without_a_terminal_progress_is_a_log_line_every_few_seconds(counted, tmp_path):
    from bigw2v.progress import LogLines
    now = [0.0]
    lines = LogLines(1000, "train sg", "word", every=30, clock=lambda: now[0])
    for t in range(1, 101):  # a batch of 10 words a second; the first one times nothing
        now[0] = float(t)
        lines.update(10)
        lines.set_postfix_str(f"epoch 1/1 batch {t}")
    lines.close()
    assert lines.lines == 4  # at 31, 61, 91 s, and the end
    assert lines.line(100.0) == "train sg: 100% (1.00k words of 1.00k words), 10.0 words/s, " \
                                "epoch 1/1 batch 100"
    # Through the command, stderr a pipe: lines, no carriage returns.
    r = run("count", root_corpus(counted), "-o", tmp_path / "w", "--min-count", "1",
            env={"BIGW2V_PROGRESS_SECONDS": "0"})
    assert r.returncode == 0 and "\r" not in r.stderr
    assert "bigw2v count: count: 100% (16.8kB of 16.8kB)\n" in r.stderr, r.stderr


def root_corpus(counted):
    return counted[0] / "corpus.txt"


def test_malformed_lines_of_evaluation_files_are_counted(counted, tmp_path, caplog):
    root, _, model = counted
    questions = tmp_path / "q.txt"
    questions.write_text(": s\nt0w0 t0w1 t1w0 t1w1\nnot a question\n\nt0w0 t0w1\n")
    pairs = tmp_path / "p.tsv"
    pairs.write_text("# comment\nword1\tword2\tscore\nt0w0\tt0w1\t5\nt0w0\tt1w0\tx\n")
    vectors = bigw2v.load(model)
    result = bigw2v.evaluate_analogies(vectors, str(questions))
    assert result["malformed_lines"] == 2 and result["total"]["questions"] == 1
    assert f"{questions}: skipped 2 malformed lines" in caplog.text and "lines 3, 5" in caplog.text
    assert bigw2v.evaluate_pairs(vectors, str(pairs))["malformed_lines"] == 2
    assert f"{pairs}: skipped 2 malformed lines" in caplog.text and "lines 2, 4" in caplog.text
