"""Files get the usual umask-derived modes, so another user can read a published model."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

import bigw2v
from conftest import planted_topics

# Files written by temp-file-then-rename (atomic.py) beside files created by open(2).
WORKDIR_FILES = ("count.json", "vocab.parquet")
MODEL_FILES = ("model.json", "vocab.parquet", "vectors.npy", "output_vectors.npy")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def shared_root():
    """A directory every user can traverse (pytest's tmp_path is 0700 under root)."""
    root = tempfile.mkdtemp(prefix="bigw2v-perm-")
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def count_and_train(root, umask):
    old = os.umask(umask)
    try:
        corpus = os.path.join(root, "corpus.txt")
        with open(corpus, "w") as f:
            f.write(planted_topics(n_sentences=300)[1])
        work, model = os.path.join(root, "work"), os.path.join(root, "model")
        bigw2v.count([corpus], work, min_count=1, threads=1, progress=False)
        bigw2v.train(work, model, dim=8, epochs=1, threads=1, progress=False)
        bigw2v.publish(model, os.path.join(root, "latest"))
    finally:
        os.umask(old)
    return work, model


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_get_the_mode_open_would_give(shared_root, umask):
    work, model = count_and_train(shared_root, umask)
    expected = 0o666 & ~umask
    for name in WORKDIR_FILES:
        assert mode(os.path.join(work, name)) == expected, name
    for name in MODEL_FILES:
        assert mode(os.path.join(model, name)) == expected, name


# Runs the reads once as root, so that every module they import is loaded (the
# interpreter and its libraries may sit where another user cannot go, e.g. under
# /root), then becomes `nobody` and reads the published model and the workdir again.
AS_NOBODY = """
import contextlib, io, os, sys
from bigw2v import cli, workdir
link, word, work = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    cli.main(["similar", link, word, "-n", "2"])
    workdir.read_vocab(work)
os.setgroups([]); os.setgid(65534); os.setuid(65534)
assert os.geteuid() == 65534 and os.getegid() == 65534
print(len(workdir.read_vocab(work)[0]), file=sys.stderr)
sys.exit(cli.main(["similar", link, word, "-n", "2"]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
def test_another_user_reads_the_published_model(shared_root):
    work, model = count_and_train(shared_root, 0o022)
    word = bigw2v.load(model).words[0]
    r = subprocess.run([sys.executable, "-c", AS_NOBODY, os.path.join(shared_root, "latest"),
                        word, work], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2 and int(r.stderr) == len(bigw2v.load(model))
    # The same read fails when the files are 0600, as atomic.py's temporary files were.
    os.chmod(os.path.join(model, "model.json"), 0o600)
    r = subprocess.run([sys.executable, "-c", AS_NOBODY, os.path.join(shared_root, "latest"),
                        word, work], capture_output=True, text=True, timeout=120)
    assert r.returncode == 65 and "Permission denied" in r.stderr, r.stderr


def test_the_api_functions_stay_functions_once_their_modules_are_imported(tmp_path):
    # Their modules (publisher, phraser) are named apart: importing a submodule binds the
    # package's attribute of the same name to it.
    import bigw2v.phraser  # noqa: F401
    import bigw2v.publisher  # noqa: F401
    from bigw2v.errors import MissingInputError
    for _ in range(2):
        with pytest.raises(MissingInputError):
            bigw2v.publish(str(tmp_path / "no-model"), str(tmp_path / "latest"))
    assert callable(bigw2v.phrases) and bigw2v.phrases.__module__ == "bigw2v"
