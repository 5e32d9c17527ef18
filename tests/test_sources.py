"""Inputs where text lives: Parquet, Arrow, JSON Lines, datasets folders and s3:// URIs.

Real components only: files written by pyarrow in each real layout, the CLI in
subprocesses, and a real S3-compatible server (moto's standalone server
process) on 127.0.0.1 for the object-store tests. Each row of a record input
is one line, so the same rows stored any way must count (and train) exactly
as the text file of those lines.
"""

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigw2v import corpus, load, remote
from bigw2v.counter import count
from bigw2v.errors import InputDataError, UsageError
from bigw2v.trainer import train
from conftest import planted_topics

OPTIONS = dict(min_count=1, threads=1, progress=False)
TRAIN = dict(dim=8, epochs=1, threads=1, progress=False)


def odd_rows():
    """Lines of planted text plus odd ones: empty, spaces only, UTF-8, tabs and other controls,
    over-long words (one cut inside a UTF-8 character)."""
    _, text = planted_topics(n_sentences=1500, sentence_len=10, seed=7)
    rows = text.split("\n")[:-1]
    odd = ["", "   ", "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001f600 \u00e9t\u00e9",
           "a\tb\x0bc\x0cd e\rf  g ", "  leading and trailing  ", "x" * 1500 + " t0w1",
           "\u00e9" * 600 + " the", "\t", "the\u00a0of \ufeffand"]
    for i, line in enumerate(odd):
        rows.insert(100 * i + 7, line)
    return rows


def as_text(rows):
    return "".join(row + "\n" for row in rows)


def vocab_bytes(workdir):
    with open(os.path.join(workdir, "vocab.parquet"), "rb") as f:
        return f.read()


def totals(manifest):
    t = manifest["totals"]
    return t["tokens"], t["sentences"], t["distinct_words"]


# ---------------------------------------------------------------- writing each layout


def write_parquet(path, rows, row_group_size=200, **columns):
    table = pa.table({"id": np.arange(len(rows)), "text": pa.array(rows, pa.string()),
                      "score": np.linspace(0, 1, len(rows)), **columns})
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")
    return str(path)


def jsonl_bytes(rows, field="text"):
    return "".join(json.dumps({"id": i, field: row, "tags": ["x", i]}, ensure_ascii=False) + "\n"
                   for i, row in enumerate(rows)).encode("utf-8")


def zstd_bytes(data):
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def write_arrow(path, rows, stream=False, chunk=300, text_type=None):
    table = pa.table({"id": np.arange(len(rows)),
                      "text": pa.array(rows, text_type or pa.string())})
    with pa.OSFile(str(path), "wb") as sink:
        opener = pa.ipc.new_stream if stream else pa.ipc.new_file
        with opener(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=chunk)
    return str(path)


def write_datasets_folder(folder, rows, shards=2):
    """A Hugging Face ``save_to_disk`` folder: Arrow stream shards, state.json and
    dataset_info.json."""
    os.makedirs(folder)
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    cut = np.linspace(0, len(rows), shards + 1).astype(int)
    for name, a, b in zip(names, cut[:-1], cut[1:]):
        write_arrow(os.path.join(folder, name), rows[a:b], stream=True, chunk=250)
    with open(os.path.join(folder, "state.json"), "w") as f:
        json.dump({"_data_files": [{"filename": n} for n in names], "_fingerprint": "0123abcd",
                   "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                   "_output_all_columns": False, "_split": None}, f, indent=2)
    with open(os.path.join(folder, "dataset_info.json"), "w") as f:
        json.dump({"features": {"id": {"dtype": "int64", "_type": "Value"},
                                "text": {"dtype": "string", "_type": "Value"}}}, f, indent=2)
    return str(folder)


def write_dataset_dict(folder, rows):
    """A ``DatasetDict.save_to_disk`` folder: dataset_dict.json, a datasets folder per split."""
    os.makedirs(folder)
    half = len(rows) // 2
    write_datasets_folder(os.path.join(folder, "train"), rows[:half])
    write_datasets_folder(os.path.join(folder, "test"), rows[half:], shards=1)
    with open(os.path.join(folder, "dataset_dict.json"), "w") as f:
        json.dump({"splits": ["train", "test"]}, f)
    return str(folder)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The same rows stored every way: {layout: path to count}, and the rows."""
    root = tmp_path_factory.mktemp("stored")
    rows = odd_rows()
    paths = {}
    (root / "c.txt").write_bytes(as_text(rows).encode("utf-8"))
    paths["txt"] = str(root / "c.txt")
    paths["parquet"] = write_parquet(root / "c.parquet", rows)
    assert pq.ParquetFile(paths["parquet"]).metadata.num_row_groups >= 5
    (root / "c.jsonl.zst").write_bytes(zstd_bytes(jsonl_bytes(rows)))
    paths["jsonl.zst"] = str(root / "c.jsonl.zst")
    (root / "c.jsonl.gz").write_bytes(gzip.compress(jsonl_bytes(rows)))
    paths["jsonl.gz"] = str(root / "c.jsonl.gz")
    paths["arrow file"] = write_arrow(root / "c.arrow", rows, text_type=pa.large_string())
    paths["arrow stream"] = write_arrow(root / "c.arrows", rows, stream=True)
    paths["datasets folder"] = write_datasets_folder(root / "hf", rows)
    paths["dataset dict"] = write_dataset_dict(root / "hf-dict", rows)
    os.makedirs(root / "mixed")
    half = len(rows) // 2
    write_parquet(root / "mixed" / "a.parquet", rows[:half])
    (root / "mixed" / "b.txt").write_text(as_text(rows[half:]), encoding="utf-8")
    paths["parquet and text dir"] = str(root / "mixed")
    os.makedirs(root / "holds-datasets")
    write_datasets_folder(root / "holds-datasets" / "a", rows[:half])
    write_dataset_dict(root / "holds-datasets" / "b", rows[half:])
    paths["dir holding datasets folders"] = str(root / "holds-datasets")
    paths["file:// URI"] = "file://" + paths["parquet"]
    return paths, rows


@pytest.fixture(scope="module")
def text_counted(stored, tmp_path_factory):
    """The .txt counted and trained: (workdir, manifest, modeldir)."""
    paths, _ = stored
    root = tmp_path_factory.mktemp("text-counted")
    workdir, modeldir = str(root / "work"), str(root / "model")
    manifest = count([paths["txt"]], workdir, **OPTIONS)
    train(workdir, modeldir, **TRAIN)
    return workdir, manifest, modeldir


def assert_same_vectors(modeldir, expected_modeldir):
    a, b = load(modeldir, mmap=False), load(expected_modeldir, mmap=False)
    assert list(a.words) == list(b.words)
    assert a.vectors.dtype == b.vectors.dtype and np.array_equal(a.vectors, b.vectors)


# ---------------------------------------------------------------- same counts


LAYOUTS = ["parquet", "jsonl.zst", "jsonl.gz", "arrow file", "arrow stream", "datasets folder",
           "dataset dict", "parquet and text dir", "dir holding datasets folders", "file:// URI"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_counts_exactly_as_the_text_file(stored, text_counted, layout, tmp_path):
    paths, _ = stored
    text_workdir, text_manifest, _ = text_counted
    workdir = str(tmp_path / "w")
    manifest = count([paths[layout]], workdir, **OPTIONS)
    assert vocab_bytes(workdir) == vocab_bytes(text_workdir)
    assert totals(manifest) == totals(text_manifest)
    if layout == "datasets folder":  # the shards, in state.json's order
        assert [os.path.basename(r["path"]) for r in manifest["inputs"]] == [
            "data-00000-of-00002.arrow", "data-00001-of-00002.arrow"]
    if layout == "dataset dict":
        assert [r["path"].split(os.sep)[-2] for r in manifest["inputs"]] == [
            "train", "train", "test"]
    if layout == "dir holding datasets folders":  # their Arrow files, not their JSON files
        assert all(r["path"].endswith(".arrow") for r in manifest["inputs"])
        assert len(manifest["inputs"]) == 5


def test_training_on_parquet_rereads_it_and_gives_the_text_files_vectors(stored, text_counted,
                                                                         tmp_path):
    paths, _ = stored
    _, _, text_model = text_counted
    workdir = str(tmp_path / "w")
    manifest = count([paths["parquet"]], workdir, **OPTIONS)
    assert manifest["inputs"][0]["path"] == paths["parquet"]
    train(workdir, str(tmp_path / "m"), **TRAIN)
    assert_same_vectors(str(tmp_path / "m"), text_model)


def test_parquet_is_read_in_bounded_blocks_of_whole_lines(stored, text_counted, tmp_path):
    paths, rows = stored
    inp = corpus.expand_inputs([paths["parquet"]])[0]
    assert (inp.kind, inp.field) == ("parquet", None)
    block_bytes = 4096
    blocks = list(corpus.input_blocks(inp, block_bytes))
    sizes = [len(block) for block, _ in blocks]
    assert len(blocks) >= 10
    assert max(sizes) <= 2 * block_bytes  # a slice of rows, never a whole row group or file
    assert all(bytes(block[-1:]) == b"\n" for block, _ in blocks)
    assert b"".join(bytes(block) for block, _ in blocks) == as_text(rows).encode("utf-8")
    done = [d for _, d in blocks]
    assert done == sorted(done) and done[-1] == inp.size
    # Counting in such small blocks changes nothing.
    count([paths["parquet"]], str(tmp_path / "w"), block_bytes=block_bytes, **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w")) == vocab_bytes(text_counted[0])


# ---------------------------------------------------------------- which column, which field


def count_text(rows, tmp_path, name):
    """The vocabulary bytes of ``rows`` counted as a text file's lines."""
    path = tmp_path / f"{name}.txt"
    path.write_text(as_text(rows), encoding="utf-8")
    count([str(path)], str(tmp_path / f"w-{name}"), **OPTIONS)
    return vocab_bytes(str(tmp_path / f"w-{name}"))


def test_default_column_is_text_else_the_only_string_column(tmp_path):
    body, title = ["alpha beta", "gamma"], ["title words", "more"]
    both = tmp_path / "both.parquet"
    pq.write_table(pa.table({"title": title, "text": body, "n": [1, 2]}), both)
    count([str(both)], str(tmp_path / "w1"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w1")) == count_text(body, tmp_path, "body")
    only = tmp_path / "only.parquet"
    pq.write_table(pa.table({"n": [1, 2], "title": title}), only)
    count([str(only)], str(tmp_path / "w2"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w2")) == count_text(title, tmp_path, "title")
    jsonl = tmp_path / "only.jsonl"
    jsonl.write_text('{"n": 1, "title": "title words"}\n{"n": 2, "title": "more"}\n')
    count([str(jsonl)], str(tmp_path / "w3"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w3")) == count_text(title, tmp_path, "title")


def test_several_string_columns_need_a_name_and_the_named_one_is_read(tmp_path):
    path = tmp_path / "two.parquet"
    pq.write_table(pa.table({"title": ["a b", "c"], "body": ["x y", "z z"], "n": [1, 2]}), path)
    with pytest.raises(UsageError, match=r"two\.parquet.*\(title, body\).*--text-column"):
        count([str(path)], str(tmp_path / "w"), **OPTIONS)
    count([str(path)], str(tmp_path / "w"), text_column="body", **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w")) == count_text(["x y", "z z"], tmp_path, "body")
    with pytest.raises(UsageError, match=r"has no column 'nope'.*title, body.*title, body, n"):
        count([str(path)], str(tmp_path / "w2"), text_column="nope", **OPTIONS)
    with pytest.raises(InputDataError, match=r"column 'n' holds int64, not strings"):
        count([str(path)], str(tmp_path / "w2"), text_column="n", **OPTIONS)


def test_null_values_are_empty_lines(tmp_path):
    rows = ["a b c", None, "b c", None, None, "c"]
    lines = [r or "" for r in rows]
    pq.write_table(pa.table({"text": rows}), tmp_path / "n.parquet", row_group_size=2)
    # In JSON Lines a null and a missing field are both empty lines.
    (tmp_path / "n.jsonl").write_text(
        "".join(json.dumps({"text": r}) + "\n" for r in rows[:-1]) + '{"other": 1}\n')
    text = count_text(lines, tmp_path, "lines")
    m_pq = count([str(tmp_path / "n.parquet")], str(tmp_path / "w-p"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w-p")) == text
    assert totals(m_pq) == (6, 3, 3)
    m_json = count([str(tmp_path / "n.jsonl")], str(tmp_path / "w-j"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w-j")) == count_text(lines[:-1] + [""], tmp_path, "j")
    assert totals(m_json) == (5, 2, 3)


def test_json_lines_fields(tmp_path):
    (tmp_path / "two.jsonl").write_text('{"title": "t", "body": "x y"}\n'
                                        '{"title": "u", "body": "z"}\n')
    with pytest.raises(UsageError, match=r"two\.jsonl.*\(title, body\).*--text-field"):
        count([str(tmp_path / "two.jsonl")], str(tmp_path / "w"), **OPTIONS)
    count([str(tmp_path / "two.jsonl")], str(tmp_path / "w"), text_field="body", **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w")) == count_text(["x y", "z"], tmp_path, "body")
    with pytest.raises(UsageError, match=r"two\.jsonl has no field 'nope'.*title, body"):
        count([str(tmp_path / "two.jsonl")], str(tmp_path / "w2"), text_field="nope", **OPTIONS)
    (tmp_path / "num.jsonl").write_text('{"text": "a b"}\n{"text": 5}\n')
    with pytest.raises(InputDataError, match=r"num\.jsonl: not a readable JSON Lines file"):
        count([str(tmp_path / "num.jsonl")], str(tmp_path / "w3"), **OPTIONS)
    # An empty JSON Lines shard has no rows, as an empty text file has no lines.
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl.gz").write_bytes(gzip.compress(b"\n \n"))
    count([str(tmp_path / "two.jsonl"), str(tmp_path / "empty.jsonl"),
           str(tmp_path / "blank.jsonl.gz")], str(tmp_path / "w4"), text_field="body", **OPTIONS)
    assert vocab_bytes(str(tmp_path / "w4")) == vocab_bytes(str(tmp_path / "w"))


def start(commands, env=None):
    """Start ``python -m bigw2v ARGS...`` for every command at once."""
    return [subprocess.Popen([sys.executable, "-m", "bigw2v", *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for args in commands]


def finish(procs):
    """The started commands' CompletedProcesses."""
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def assert_one_line_errors(cases, env=None):
    """``cases``: (count arguments, exit code, words the message must hold)."""
    results = finish(start([["count", *args] for args, _, _ in cases], env))
    for (args, code, words), r in zip(cases, results):
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code, (args, r.stderr)
        assert len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert lines[0].startswith("bigw2v count: error: "), (args, r.stderr)
        for word in words:
            assert word in lines[0], (args, word, r.stderr)


def test_column_field_and_corrupt_file_errors_are_one_line(stored, tmp_path):
    paths, _ = stored
    two = tmp_path / "two.parquet"
    pq.write_table(pa.table({"title": ["a b"], "body": ["x y"], "n": [1]}), two)
    (tmp_path / "num.jsonl").write_text('{"text": "a b"}\n{"text": 5}\n')
    (tmp_path / "two.jsonl").write_text('{"title": "t", "body": "x y"}\n')
    with open(paths["parquet"], "rb") as f:
        whole = f.read()
    (tmp_path / "cut.parquet").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "garbage.parquet").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1\x00\x00" + bytes(200))
    cases = [
        ([two], 64, [str(two), "title, body", "--text-column"]),
        ([two, "--text-column", "nope"], 64, [str(two), "'nope'", "title, body, n"]),
        ([two, "--text-column", "n"], 65, [str(two), "'n'", "int64", "not strings"]),
        ([tmp_path / "two.jsonl", "--text-field", "body2"], 64, ["two.jsonl", "'body2'",
                                                                 "title, body"]),
        ([tmp_path / "num.jsonl"], 65, [str(tmp_path / "num.jsonl"), "JSON Lines"]),
        ([tmp_path / "cut.parquet"], 65, [str(tmp_path / "cut.parquet"), "Parquet"]),
        ([tmp_path / "garbage.parquet"], 65, [str(tmp_path / "garbage.parquet"), "Parquet"]),
        ([tmp_path / "bad.arrow"], 65, [str(tmp_path / "bad.arrow"), "Arrow"]),
    ]
    for i, (args, _, _) in enumerate(cases):
        args += ["-o", tmp_path / f"w{i}", "--min-count", "1", "--quiet", "--threads", "1"]
    assert_one_line_errors(cases)


# ---------------------------------------------------------------- incremental


def write_shards(folder, seeds):
    os.makedirs(folder, exist_ok=True)
    for name, seed in seeds.items():
        _, text = planted_topics(n_sentences=150 + 10 * seed, seed=seed, n_topics=3 + seed % 3)
        lines = text.split("\n")[:-1]
        write_parquet(os.path.join(folder, name), lines, row_group_size=40,
                      title=pa.array([f"title{seed} {i % 7}" for i in range(len(lines))]))


def test_parquet_shards_count_incrementally(tmp_path):
    shards = str(tmp_path / "shards")
    write_shards(shards, {"a.parquet": 1, "b.parquet": 2, "c.parquet": 3, "d.parquet": 4})
    workdir = str(tmp_path / "w")
    options = dict(OPTIONS, small_input_bytes=0)  # one run directory per shard
    count([shards], workdir, **options)
    assert count([shards], workdir, **options)["last_run"]["up_to_date"]
    # Rewrite b (new content and mtime), add e, remove a.
    before = os.stat(os.path.join(shards, "b.parquet")).st_mtime_ns
    write_shards(shards, {"b.parquet": 12, "e.parquet": 5})
    os.utime(os.path.join(shards, "b.parquet"), ns=(before + 10**9, before + 10**9))
    os.remove(os.path.join(shards, "a.parquet"))
    manifest = count([shards], workdir, **options)
    assert manifest["last_run"] == {"reused_inputs": 2, "counted_inputs": 2,
                                    "dropped_inputs": 1, "up_to_date": False}
    fresh = count([shards], str(tmp_path / "fresh"), **options)
    assert vocab_bytes(workdir) == vocab_bytes(str(tmp_path / "fresh"))
    assert totals(manifest) == totals(fresh)
    # Another column is other text: nothing is reused, and the settings say which column.
    manifest = count([shards], workdir, text_column="title", **options)
    assert manifest["last_run"]["reused_inputs"] == 0
    assert manifest["last_run"]["counted_inputs"] == 4
    assert manifest["settings"]["text_column"] == "title"
    assert manifest["settings"]["text_field"] is None
    count([shards], str(tmp_path / "fresh-title"), text_column="title", **options)
    assert vocab_bytes(workdir) == vocab_bytes(str(tmp_path / "fresh-title"))
    assert count([shards], workdir, text_column="title", **options)["last_run"]["up_to_date"]
    manifest = count([shards], workdir, **options)
    assert manifest["last_run"]["counted_inputs"] == 4
    assert vocab_bytes(workdir) == vocab_bytes(str(tmp_path / "fresh"))


# ---------------------------------------------------------------- S3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server process (moto's standalone server) on 127.0.0.1: its endpoint."""
    pytest.importorskip("moto.server")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                             "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {endpoint}") from None
                time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_env(endpoint, tmp_path):
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            # Not the user's own AWS configuration.
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}


class Bucket:
    """A new bucket on the test server, and uploads byte for byte (no compression on the way)."""

    def __init__(self, name):
        from pyarrow import fs as pafs
        self.name = name
        self.fs = pafs.FileSystem.from_uri(f"s3://{name}?allow_bucket_creation=true")[0]
        self.fs.create_dir(name)

    def put(self, key, data):
        with self.fs.open_output_stream(f"{self.name}/{key}", compression=None) as out:
            out.write(data)


@pytest.fixture
def s3(s3_server, tmp_path, monkeypatch, request):
    """This process speaks to the test server: the environment for subprocesses, and a bucket."""
    env = aws_env(s3_server, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    remote._filesystem.cache_clear()  # clients made for another endpoint
    request.addfinalizer(remote._filesystem.cache_clear)
    bucket = Bucket(request.node.name.lower().replace("_", "-")[:40].strip("-"))
    return dict(os.environ), bucket


def shard_bytes(rows, kind):
    """``rows`` as the bytes of a file of ``kind``."""
    if kind == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"text": rows, "n": np.arange(len(rows))}), sink,
                       row_group_size=100)
        return sink.getvalue().to_pybytes()
    if kind == "jsonl.zst":
        return zstd_bytes(jsonl_bytes(rows))
    return gzip.compress(as_text(rows).encode("utf-8"))


def put_corpus(bucket, local, rows):
    """Consecutive slices of ``rows`` as prefix/ a, b, c .parquet, d.jsonl.zst, e.txt.gz, in the
    bucket and in the local folder ``local``."""
    os.makedirs(local, exist_ok=True)
    names = ["a.parquet", "b.parquet", "c.parquet", "d.jsonl.zst", "e.txt.gz"]
    cut = np.linspace(0, len(rows), len(names) + 1).astype(int)
    for name, lo, hi in zip(names, cut[:-1], cut[1:]):
        data = shard_bytes(rows[lo:hi], name.split(".", 1)[1])
        bucket.put(f"prefix/{name}", data)
        with open(os.path.join(local, name), "wb") as f:
            f.write(data)
    return names


def test_s3_counts_and_trains_as_the_same_files_on_disk(s3, stored, text_counted, tmp_path):
    _, bucket = s3
    _, rows = stored
    text_workdir, text_manifest, text_model = text_counted
    local = str(tmp_path / "local")
    names = put_corpus(bucket, local, rows)
    workdir = str(tmp_path / "w")
    manifest = count([f"s3://{bucket.name}/prefix/"], workdir, **OPTIONS)
    assert [r["path"] for r in manifest["inputs"]] == [
        f"s3://{bucket.name}/prefix/{n}" for n in names]
    count([local], str(tmp_path / "w-local"), **OPTIONS)
    assert vocab_bytes(workdir) == vocab_bytes(str(tmp_path / "w-local"))
    # The slices, in order, are the text file's lines.
    assert vocab_bytes(workdir) == vocab_bytes(text_workdir)
    assert totals(manifest) == totals(text_manifest)
    # Training reads the objects again, in order: the text file's vectors.
    train(workdir, str(tmp_path / "m"), **TRAIN)
    assert_same_vectors(str(tmp_path / "m"), text_model)
    # A glob.
    manifest = count([f"s3://{bucket.name}/prefix/*.parquet"], str(tmp_path / "g"), **OPTIONS)
    assert len(manifest["inputs"]) == 3
    count([os.path.join(local, n) for n in names[:3]], str(tmp_path / "g-local"), **OPTIONS)
    assert vocab_bytes(str(tmp_path / "g")) == vocab_bytes(str(tmp_path / "g-local"))


def test_s3_a_changed_object_is_the_only_one_counted_again(s3, stored, tmp_path):
    _, bucket = s3
    _, rows = stored
    put_corpus(bucket, str(tmp_path / "local"), rows[:1000])
    uri = f"s3://{bucket.name}/prefix/"
    workdir = str(tmp_path / "w")
    options = dict(OPTIONS, small_input_bytes=0)
    count([uri], workdir, **options)
    assert count([uri], workdir, **options)["last_run"]["up_to_date"]
    # New content of another size: S3 modification times are whole seconds, so a rewrite in
    # the same second is told apart by its size.
    bucket.put("prefix/b.parquet", shard_bytes(rows[1000:1400], "parquet"))
    manifest = count([uri], workdir, **options)
    assert manifest["last_run"] == {"reused_inputs": 4, "counted_inputs": 1,
                                    "dropped_inputs": 0, "up_to_date": False}
    fresh = count([uri], str(tmp_path / "fresh"), **options)
    assert vocab_bytes(workdir) == vocab_bytes(str(tmp_path / "fresh"))
    assert totals(manifest) == totals(fresh)


def test_s3_errors_are_one_line_with_the_uri(s3, tmp_path):
    env, bucket = s3
    bucket.put("prefix/a.txt", b"hello world\n")
    nobody = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    options = ["--min-count", "1", "--quiet", "--threads", "1"]
    glob = f"s3://{bucket.name}/prefix/*.parquet"
    missing_key = f"s3://{bucket.name}/prefix/b.txt"
    missing_bucket = "s3://no-such-bucket-here/x.txt"
    cases = [
        ([glob], 66, ["no object matches", glob]),
        ([missing_key], 66, ["no such object", missing_key]),
        ([missing_bucket], 66, ["no such object", missing_bucket]),
        (["s3://no-such-bucket-here/news/*.parquet"], 66, ["no object matches"]),
    ]
    unreachable = [([f"s3://{bucket.name}/prefix/a.txt"], 74, ["cannot reach", "prefix/a.txt"]),
                   ([f"s3://{bucket.name}/prefix/*.txt"], 74, ["cannot reach", "*.txt"])]
    for i, (args, _, _) in enumerate(cases + unreachable):
        args += ["-o", tmp_path / f"w{i}", *options]
    # The unreachable store is retried for seconds: its commands run alongside the others.
    slow = start([["count", *args] for args, _, _ in unreachable], nobody)
    assert_one_line_errors(cases, env)
    for (args, code, words), r in zip(unreachable, finish(slow)):
        assert r.returncode == code and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr and all(w in r.stderr for w in words), r.stderr
