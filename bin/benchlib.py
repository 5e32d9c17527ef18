"""Shared helpers for the bin/bench-* scripts (standard library only).

- run_timed: run a command with its output in log files; wall, CPU and peak memory.
- plain_corpus / sentence_lines_corpus: the corpus decompressed (optionally cut to its
  first N bytes) and re-cut into lines of at most N words, each written once per
  scratch directory and reused while the source is unchanged.
- gensim_command: train gensim in a child process (run this file as a script), so
  its wall time is measured like the other tools'.
- find_c_tool, machine_info, package_versions, git_info: what ran, and where.
- replace_region: rewrite one generated region of a Markdown file, leaving the rest.
"""

import bz2
import datetime
import gzip
import importlib.metadata
import json
import lzma
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPRESSED = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
BLOCK_BYTES = 1 << 24


def reexec_in_venv(script):
    """Re-run `script` under the repository's .venv (made by bin/_venv.sh with the bench
    extras) unless this process already runs there."""
    if os.environ.get("BIGW2V_BENCH_VENV") == "1":
        return
    os.environ["BIGW2V_BENCH_VENV"] = "1"
    setup = 'BIGW2V_EXTRAS=bench source "$0/bin/_venv.sh" && exec python "$@"'
    name = os.path.basename(script)
    try:
        os.execvp("bash", ["bash", "-c", setup, REPO, os.path.abspath(script), *sys.argv[1:]])
    except OSError as e:
        sys.exit(f"{name}: cannot run bash to set up the venv: {e}")


def runtime_python():
    """The Python of a venv holding bigw2v and its runtime dependencies only.

    bigw2v is benchmarked as a user installs it: the bench venv also holds
    gensim, which brings SciPy, and Numba imports SciPy's BLAS the first time
    it loads any compiled function (about 0.13 s of every bigw2v command
    here), although bigw2v never calls a BLAS. Made by bin/_venv.sh in
    .venv-runtime, reused while pyproject.toml is unchanged.
    """
    venv = os.path.join(REPO, ".venv-runtime")
    setup = 'BIGW2V_VENV="$1" BIGW2V_EXTRAS= source "$0/bin/_venv.sh" >&2'
    done = subprocess.run(["bash", "-c", setup, REPO, venv], stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise BenchError(f"could not set up {venv} (bin/_venv.sh failed, see above)")
    return os.path.join(venv, "bin", "python")


class BenchError(Exception):
    """A problem the user can fix (missing file, bad option): printed without traceback."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def human_bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.{0 if n % scale == 0 else 1}f} {unit}"
    return f"{n} B"


def text_tail(text, lines=15):
    """The last non-blank lines of `text`; carriage returns (progress bars) count as line ends."""
    parts = [p.rstrip() for p in text.replace("\r", "\n").split("\n")]
    return "\n".join([p for p in parts if p.strip()][-lines:])


def file_tail(path, lines=15, max_bytes=65536):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return text_tail(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


# --------------------------------------------------------------------------- commands

@dataclass
class Timed:
    """One finished command: exit status, wall / CPU seconds, its log files.

    No peak memory: wait4()'s ru_maxrss of a child forked from this (large)
    Python process reports this process's RSS at the fork, not the child's.
    bin/bench-scale samples memory from /proc instead.
    """
    command: list
    returncode: int
    wall_seconds: float
    cpu_seconds: float = 0.0
    stdout_path: str = ""
    stderr_path: str = ""
    launch_error: str = ""

    @property
    def ok(self):
        return self.returncode == 0

    def stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def failure(self, lines=15):
        """Why it failed, with the tail of its stderr (or stdout, for tools that print there)."""
        if self.launch_error:
            return f"could not start {self.command[0]}: {self.launch_error}"
        if self.returncode < 0:
            what = f"killed by signal {-self.returncode}"
        else:
            what = f"exit code {self.returncode}"
        tail = file_tail(self.stderr_path, lines) or file_tail(self.stdout_path, lines)
        return f"{what}" + (f"; output ends with:\n{tail}" if tail else " (no output)")

    def as_dict(self):
        return {"command": [str(c) for c in self.command], "returncode": self.returncode,
                "wall_seconds": round(self.wall_seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3),
                "stdout": self.stdout_path, "stderr": self.stderr_path}


def run_timed(command, log_prefix, env=None, cwd=None):
    """Run `command` (stdin closed) with stdout/stderr in LOG_PREFIX.out/.err.

    Wall time covers the whole command from start to exit; CPU seconds come
    from wait4() (the child and the children it waited for).
    Never raises for a failing command: check .ok and .failure().
    Dirty pages are flushed first (sync) and not timed: otherwise the previous
    command's output, still being written back, is charged to whichever
    command next calls fsync.
    """
    os.sync()
    os.makedirs(os.path.dirname(os.path.abspath(log_prefix)), exist_ok=True)
    out_path, err_path = log_prefix + ".out", log_prefix + ".err"
    command = [str(c) for c in command]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=env, cwd=cwd)
        except OSError as e:
            return Timed(command, 127, 0.0, stdout_path=out_path, stderr_path=err_path,
                         launch_error=e.strerror or str(e))
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C and the like: do not leave the child running
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Timed(command, proc.returncode, wall,
                 cpu_seconds=usage.ru_utime + usage.ru_stime,
                 stdout_path=out_path, stderr_path=err_path)


# --------------------------------------------------------------------------- corpora

def open_corpus(path):
    """Binary reader for a text file, decompressing .xz .gz .bz2 by suffix."""
    opener = COMPRESSED.get(os.path.splitext(path)[1].lower(), open)
    return opener(path, "rb")


def _source_key(path, **extra):
    st = os.stat(path)
    return {"source": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            **extra}


def _cached(dest, key):
    """The stamp stored next to `dest` if it matches `key` and `dest` exists, else None."""
    try:
        with open(dest + ".stamp.json") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    if os.path.isfile(dest) and stamp.get("key") == key:
        return stamp
    return None


def _write_stamp(dest, key, **info):
    with open(dest + ".stamp.json", "w") as f:
        json.dump({"key": key, **info}, f, indent=1)
        f.write("\n")


def check_input(path, what):
    if not os.path.isfile(path):
        raise BenchError(f"{what} {path} not found")
    if not os.access(path, os.R_OK):
        raise BenchError(f"{what} {path} is not readable")


def plain_corpus(source, scratch, limit_bytes=None):
    """The corpus as plain text, for tools that cannot decompress: a dict with `path`,
    `bytes`, `seconds` (0 when reused) and `reused`.

    A plain file used whole is returned as is; otherwise the decompressed text
    (its first `limit_bytes` bytes, if given) is written once into `scratch` and
    reused while the source file is unchanged.
    """
    check_input(source, "corpus")
    compressed = os.path.splitext(source)[1].lower() in COMPRESSED
    if not compressed and limit_bytes is None:
        return {"path": source, "bytes": os.path.getsize(source), "seconds": 0.0,
                "reused": True, "copied": False}
    os.makedirs(scratch, exist_ok=True)
    dest = os.path.join(scratch, "corpus.txt")
    key = _source_key(source, limit_bytes=limit_bytes)
    stamp = _cached(dest, key)
    if stamp:
        return {"path": dest, "bytes": stamp["bytes"], "seconds": 0.0, "reused": True,
                "copied": True}
    started = time.perf_counter()
    written = 0
    tmp = dest + ".tmp"
    try:
        with open_corpus(source) as src, open(tmp, "wb") as out:
            while limit_bytes is None or written < limit_bytes:
                want = BLOCK_BYTES if limit_bytes is None else min(BLOCK_BYTES,
                                                                   limit_bytes - written)
                block = src.read(want)
                if not block:
                    break
                out.write(block)
                written += len(block)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise BenchError(f"cannot decompress {source}: {e}") from None
    os.replace(tmp, dest)
    _write_stamp(dest, key, bytes=written)
    return {"path": dest, "bytes": written, "seconds": time.perf_counter() - started,
            "reused": False, "copied": True}


def _recut_lines(source, dest, words_per_line):
    """Copy `source` to `dest` with every line cut into lines of at most `words_per_line`
    words (single spaces); existing line breaks are kept, blank lines dropped."""
    words_total = lines_total = 0
    pending = []
    carry = b""

    def flush():
        nonlocal words_total, lines_total, pending
        out.write(b" ".join(pending) + b"\n")
        words_total += len(pending)
        lines_total += 1
        pending = []

    with open(source, "rb") as src, open(dest, "wb") as out:
        while True:
            block = src.read(BLOCK_BYTES)
            data = carry + block
            if block:
                # Keep a word cut by the block boundary for the next round.
                cut = max(data.rfind(b" "), data.rfind(b"\n"), data.rfind(b"\t"),
                          data.rfind(b"\r"))
                if cut < 0:
                    carry = data
                    continue
                carry, data = data[cut + 1:], data[:cut + 1]
            for i, segment in enumerate(data.split(b"\n")):
                if i > 0 and pending:  # the input line ended
                    flush()
                words = segment.split()
                pos = 0
                while pos < len(words):
                    take = words_per_line - len(pending)
                    pending.extend(words[pos:pos + take])
                    pos += take
                    if len(pending) >= words_per_line:
                        flush()
            if not block:
                break
        if pending:
            flush()
    return words_total, lines_total


def sentence_lines_corpus(plain_path, scratch, words_per_line=1000):
    """`plain_path` re-cut into lines of at most `words_per_line` words, written once
    into `scratch`; a dict with `path`, `words`, `lines`, `seconds`, `reused`.

    gensim's corpus_file mode needs this: on a single-line corpus such as text8
    it learns next to nothing.
    """
    os.makedirs(scratch, exist_ok=True)
    dest = os.path.join(scratch, f"corpus.lines{words_per_line}.txt")
    key = _source_key(plain_path, words_per_line=words_per_line)
    stamp = _cached(dest, key)
    if stamp:
        return {"path": dest, "words": stamp["words"], "lines": stamp["lines"],
                "seconds": 0.0, "reused": True}
    started = time.perf_counter()
    tmp = dest + ".tmp"
    words, lines = _recut_lines(plain_path, tmp, words_per_line)
    os.replace(tmp, dest)
    _write_stamp(dest, key, words=words, lines=lines)
    return {"path": dest, "words": words, "lines": lines,
            "seconds": time.perf_counter() - started, "reused": False}


def repeated_corpus(path, scratch, times):
    """`path` written `times` times, the copies separated by a LF, once into `scratch`.

    A larger corpus with the same words, for measurements whose fixed costs
    (starting Python, loading libraries) would otherwise hide the per-word cost.
    """
    os.makedirs(scratch, exist_ok=True)
    stem, ext = os.path.splitext(os.path.basename(path))
    dest = os.path.join(scratch, f"{stem}.x{times}{ext}")
    key = _source_key(path, times=times)
    if _cached(dest, key):
        return dest
    tmp = dest + ".tmp"
    with open(tmp, "wb") as out:
        for _ in range(times):
            with open(path, "rb") as f:
                shutil.copyfileobj(f, out, 16 * 2**20)
            out.write(b"\n")
    os.replace(tmp, dest)
    _write_stamp(dest, key)
    return dest


# --------------------------------------------------------------------------- tools

def find_c_tool(explicit=None):
    """(path, None) for the original C word2vec binary, or (None, reason it is unusable)."""
    candidates = [explicit] if explicit else [
        os.path.join(os.path.dirname(sys.executable), "word2vec"), shutil.which("word2vec")]
    for path in candidates:
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            continue
        try:
            probe = subprocess.run([path], stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{path} does not run: {e}"
        if b"-train <file>" not in probe.stdout + probe.stderr:
            return None, f"{path} is not the original C word2vec tool (no -train in its usage)"
        return path, None
    where = explicit or "the venv (pip install word2vec) or PATH"
    return None, f"C word2vec tool not found in {where}"


def gensim_available(python=sys.executable):
    """None if gensim with its compiled corpus_file support imports, else the reason."""
    probe = subprocess.run(
        [python, "-c", "import gensim.models.word2vec_corpusfile"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    return "gensim (with corpus_file support) does not import: " + text_tail(probe.stderr, 1)


def gensim_command(spec, python=sys.executable):
    """argv that trains gensim Word2Vec per `spec` in a child process (see gensim_train)."""
    return [python, os.path.abspath(__file__), "gensim-train", json.dumps(spec)]


def gensim_train(spec):
    """Train gensim Word2Vec on spec["corpus_file"] and save spec["output"] (C binary format).

    spec: corpus_file, output, sg, vector_size, window, negative, hs, sample,
    min_count, epochs, workers, alpha, seed; vocab_only (optional): stop after
    building the vocabulary. Prints a JSON summary on stdout.
    """
    started = time.perf_counter()
    from gensim.models import Word2Vec
    imported = time.perf_counter()
    model = Word2Vec(vector_size=spec["vector_size"], window=spec["window"],
                     negative=spec["negative"], hs=spec["hs"], sample=spec["sample"],
                     min_count=spec["min_count"], epochs=spec["epochs"],
                     workers=spec["workers"], sg=spec["sg"], alpha=spec["alpha"],
                     seed=spec["seed"])
    model.build_vocab(corpus_file=spec["corpus_file"])
    vocab_done = time.perf_counter()
    if spec.get("vocab_only"):
        print(json.dumps({"import_seconds": round(imported - started, 3),
                          "vocab_seconds": round(vocab_done - imported, 3),
                          "vocab_size": len(model.wv),
                          "corpus_words": model.corpus_total_words}))
        return
    trained, raw = model.train(corpus_file=spec["corpus_file"],
                               total_words=model.corpus_total_words, epochs=model.epochs)
    train_done = time.perf_counter()
    model.wv.save_word2vec_format(spec["output"], binary=True)
    print(json.dumps({
        "import_seconds": round(imported - started, 3),
        "vocab_seconds": round(vocab_done - imported, 3),
        "train_seconds": round(train_done - vocab_done, 3),
        "save_seconds": round(time.perf_counter() - train_done, 3),
        "vocab_size": len(model.wv),
        "corpus_words": model.corpus_total_words,
        "trained_words": trained, "raw_words": raw,
        "min_alpha": model.min_alpha,
    }))


# --------------------------------------------------------------------------- provenance

def machine_info():
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_gb = round(int(line.split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"nproc": usable, "cpu_count": os.cpu_count(), "cpu_model": cpu_model,
            "memory_gb": memory_gb, "platform": platform.platform(),
            "python": platform.python_version(), "hostname": platform.node(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def package_versions(names=("bigw2v", "numpy", "numba", "gensim", "word2vec")):
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_info(repo=REPO):
    def git(*args):
        try:
            r = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                               timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None
    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


# --------------------------------------------------------------------------- documents

def replace_region(path, name, body, title="# Benchmarks"):
    """Put `body` between <!-- NAME:start --> and <!-- NAME:end --> in the Markdown file
    `path`, creating the file (with `title`) or appending the region if missing.
    Everything outside the region is kept byte for byte."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        i = text.find(start)
        j = text.find(end, i if i >= 0 else 0)
        if i >= 0 and j >= 0:
            text = text[:i] + block + text[j + len(end):]
        elif i >= 0 or text.find(end) >= 0:
            raise BenchError(f"{path}: {start} and {end} must both be present, start first")
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = (f"{title}\n\nThe sections between `<!-- ...:start/end -->` markers are "
                f"written by the `bin/bench-*` scripts; edit outside them.\n\n{block}\n")
    write_atomic(path, text)


def write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    if len(argv) == 2 and argv[0] == "gensim-train":
        gensim_train(json.loads(argv[1]))
        return 0
    print("usage: benchlib.py gensim-train SPEC_JSON   (used by the bin/bench-* scripts)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
