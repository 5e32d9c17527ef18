"""Preflight: train and count refuse runs that cannot fit, with figures and a way out.

psutil's and shutil's figures are monkeypatched: the machine running the
tests has room; these tests pretend it has not.
"""

import logging
import os
import re
from types import SimpleNamespace

import pytest

from bigw2v import cli, preflight
from bigw2v.errors import ResourceError
from bigw2v.settings import TrainSettings
from bigw2v.trainer import train
from bigw2v.counter import count
from bigw2v.workdir import read_manifest, read_vocab

DIM = 200
OPTIONS = dict(dim=DIM, epochs=1, threads=1, progress=False)


@pytest.fixture
def room(monkeypatch):
    """Set the memory and free disk the preflight sees; margins off, so needs are exact."""
    figures = {"memory": 1 << 40, "disk": 1 << 40}
    monkeypatch.setattr(preflight, "MEMORY_MARGIN", 0)
    monkeypatch.setattr(preflight, "DISK_MARGIN", 0)
    monkeypatch.setattr(preflight.psutil, "virtual_memory",
                        lambda: SimpleNamespace(available=figures["memory"]))
    monkeypatch.setattr(preflight.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=2 << 40, used=0, free=figures["disk"]))
    return figures


def needs(workdir, vocab_size, checkpoints=True, cached=False):
    manifest = read_manifest(workdir)
    counts = read_vocab(workdir)[1]
    n_tokens = int(counts[:vocab_size].sum())
    return preflight.train_needs(vocab_size, len(counts), DIM, 5, False, n_tokens,
                                 preflight.sentences_bound(manifest, n_tokens), cached,
                                 checkpoints)


def suggested(message):
    n = int(re.search(r"--max-vocab (\d+)", message).group(1))
    min_count = int(re.search(r"--min-count (\d+)", message).group(1))
    return n, min_count


def test_weights_larger_than_memory_are_refused_with_a_vocabulary_that_fits(
        planted_workdir, tmp_path, room):
    workdir = planted_workdir[0]
    words, counts = read_vocab(workdir)
    full = needs(workdir, len(words))
    room["memory"] = full.memory * 2 // 3
    with pytest.raises(ResourceError) as e:
        train(workdir, str(tmp_path / "m"), **OPTIONS)
    message = str(e.value)
    assert "memory" in message and preflight.human(full.memory) in message
    assert preflight.human(room["memory"]) in message and "--no-preflight" in message
    assert not os.path.exists(tmp_path / "m" / "vectors.npy")  # nothing allocated
    n, min_count = suggested(message)
    assert 1 <= n < len(words)
    assert needs(workdir, n).memory <= room["memory"] < needs(workdir, n + 1).memory
    assert min_count == counts[n] + 1 and (counts >= min_count).sum() <= n  # the least that fits
    # Both suggestions pass the same check and train.
    assert train(workdir, str(tmp_path / "a"), max_vocab=n, **OPTIONS)["vocab_size"] == n
    assert train(workdir, str(tmp_path / "b"), min_count=min_count, **OPTIONS)["vocab_size"] <= n


def test_no_preflight_trains_anyway(planted_workdir, tmp_path, room):
    room["memory"] = room["disk"] = 1
    info = train(planted_workdir[0], str(tmp_path / "m"), preflight=False, **OPTIONS)
    assert info["complete"]


def test_memory_that_is_nearly_full_is_a_warning(planted_workdir, tmp_path, room, caplog):
    workdir = planted_workdir[0]
    room["memory"] = int(needs(workdir, len(read_vocab(workdir)[0]), cached=True).memory / 0.9)
    with caplog.at_level(logging.WARNING, logger="bigw2v"):
        train(workdir, str(tmp_path / "m"), **OPTIONS)
    assert "memory is tight" in caplog.text


def test_disk_for_weights_and_checkpoint_copies(planted_workdir, tmp_path, room):
    workdir = planted_workdir[0]
    train(workdir, str(tmp_path / "warm"), **OPTIONS)  # the encoding is cached now
    v = len(read_vocab(workdir)[0])
    with_copies = needs(workdir, v, checkpoints=True, cached=True).model_disk
    without = needs(workdir, v, checkpoints=False, cached=True).model_disk
    assert with_copies - without == 2 * needs(workdir, v).weights
    room["disk"] = (with_copies + without) // 2
    with pytest.raises(ResourceError, match=r"disk at .*weights and checkpoint copies") as e:
        train(workdir, str(tmp_path / "m"), **OPTIONS)
    assert "--checkpoint-every 0" in str(e.value)
    assert train(workdir, str(tmp_path / "m"), checkpoint_every=0, **OPTIONS)["complete"]
    # Training the same MODELDIR again (--force): the old model's files are replaced, so
    # count as free.
    room["disk"] = with_copies - needs(workdir, v).weights  # the old weights file alone is freed
    assert train(workdir, str(tmp_path / "m"), force=True, **OPTIONS)["complete"]


def test_token_file_counts_on_the_workdir_disk(tmp_path, room):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d e f\n" * 1000)
    workdir = str(tmp_path / "w")
    count([str(corpus)], workdir, min_count=1, threads=1, progress=False)
    need = needs(workdir, 6, cached=False)
    assert need.encoding_disk >= 4 * 6000
    # Same filesystem: the model's and the workdir's needs add up.
    room["disk"] = need.model_disk + need.encoding_disk - 1
    with pytest.raises(ResourceError, match="token file in WORKDIR"):
        train(workdir, str(tmp_path / "m"), **OPTIONS)
    room["disk"] += 1
    assert train(workdir, str(tmp_path / "m"), **OPTIONS)["complete"]


def test_train_needs_rule():
    n = preflight.train_needs(1000, 1500, 10, 5, True, 10**6, 10**4, False, True)
    assert n.weights == 4 * 10 * (1000 + 1000 + 999)
    assert n.model_disk == 3 * n.weights + 1000 * 32 + preflight.DISK_MARGIN
    assert n.encoding_disk == 4 * 10**6 + 16 * (10**4 + 1) + preflight.DISK_MARGIN
    cached = preflight.train_needs(1000, 1500, 10, 5, True, 10**6, 10**4, True, False)
    assert cached.encoding_disk == 0 and cached.model_disk == n.weights + 1000 * 32 + preflight.DISK_MARGIN


def test_the_command_line_exits_74_with_the_message(planted_workdir, tmp_path, room, capsys):
    room["memory"] = 1
    code = cli.main(["train", planted_workdir[0], "-o", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 74 and "not enough room" in err and "Traceback" not in err
    code = cli.main(["train", planted_workdir[0], "-o", str(tmp_path / "m"), "--quiet",
                     "--no-preflight", "--dim", "8", "--epochs", "1"])
    assert code == 0, capsys.readouterr().err


# ---------------------------------------------------------------- count


def test_count_refuses_a_disk_smaller_than_the_text_and_keeps_the_old_count(tmp_path, room):
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta gamma\n" * 5000)
    workdir = str(tmp_path / "w")
    count([str(corpus)], workdir, min_count=1, threads=1, progress=False)
    with open(corpus, "a") as f:
        f.write("delta\n")
    size = os.path.getsize(corpus)
    room["disk"] = size // 2
    with pytest.raises(ResourceError, match="not enough disk space to count") as e:
        count([str(corpus)], workdir, min_count=1, threads=1, progress=False)
    assert preflight.human(size) in str(e.value) and "--no-preflight" in str(e.value)
    assert read_manifest(workdir)["totals"]["tokens"] == 15000  # the old count is untouched
    manifest = count([str(corpus)], workdir, min_count=1, threads=1, progress=False,
                     preflight=False)
    assert manifest["totals"]["tokens"] == 15001
    # The old count's runs and shards are replaced: they count as free, so a disk one
    # byte short of the changed text is enough to count it again in this workdir...
    with open(corpus, "a") as f:
        f.write("delta\n")
    room["disk"] = os.path.getsize(corpus) - 1
    manifest = count([str(corpus)], workdir, min_count=2, threads=1, progress=False)
    assert manifest["totals"]["tokens"] == 15002 and manifest["last_run"]["counted_inputs"] == 1
    assert read_vocab(workdir)[0][3:] == ["delta"]  # now twice: >= min-count 2
    # ... but not in a new one, where nothing is freed.
    with pytest.raises(ResourceError, match="not enough disk space to count"):
        count([str(corpus)], str(tmp_path / "new"), min_count=2, threads=1, progress=False)


def test_compressed_inputs_are_taken_at_several_times_their_size(tmp_path):
    from bigw2v.corpus import InputFile
    plain = InputFile("/x", 1000, 0, None)
    packed = InputFile("/y", 1000, 0, "xz")
    assert (preflight.count_disk_need([packed]) - preflight.DISK_MARGIN
            == preflight.COMPRESSED_EXPANSION * (preflight.count_disk_need([plain]) - preflight.DISK_MARGIN))


def test_count_on_the_command_line_exits_74(tmp_path, room, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 100)
    room["disk"] = 10
    code = cli.main(["count", str(corpus), "-o", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 74 and "not enough disk space" in err and "Traceback" not in err
    assert cli.main(["count", str(corpus), "-o", str(tmp_path / "w"), "--quiet",
                     "--no-preflight"]) == 0
