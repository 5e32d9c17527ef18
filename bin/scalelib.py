"""Synthetic Zipf corpora and memory-sampled runs, for bin/bench-scale and bin/bench-walkthrough.

Imported after benchlib.reexec_in_venv (needs numpy and psutil).
"""

import os
import subprocess
import time

import numpy as np
import psutil

import benchlib as bl



def word_of(rank):
    """The synthetic word for a Zipf rank: its bijective base-26 spelling (a, b, ..., z, aa, ...)."""
    out = []
    while rank > 0:
        rank, r = divmod(rank - 1, 26)
        out.append(chr(97 + r))
    return "".join(reversed(out))


def generate(path, tokens, exponent=1.3, seed=0, words_per_line=100, block=5_000_000):
    """Write `tokens` Zipf-distributed words to `path`, `words_per_line` to a line, streaming."""
    if os.path.exists(path) and os.path.exists(path + ".done"):
        return
    rng = np.random.default_rng(seed)
    cache_size = 1 << 21  # spellings of the most frequent ranks, built once
    spelled = np.array([word_of(r) for r in range(cache_size)], dtype=object)
    written = 0
    started = time.time()
    with open(path + ".tmp", "w") as f:
        while written < tokens:
            n = min(block, tokens - written)
            ranks = rng.zipf(exponent, n)
            words = np.empty(n, dtype=object)
            small = ranks < cache_size
            words[small] = spelled[ranks[small]]
            words[~small] = [word_of(int(r)) for r in ranks[~small]]
            lines = [" ".join(words[i:i + words_per_line]) for i in range(0, n, words_per_line)]
            f.write("\n".join(lines))
            f.write("\n")
            written += n
            bl.log(f"  generated {written:,} / {tokens:,} tokens ({time.time() - started:.0f} s)")
    os.replace(path + ".tmp", path)
    open(path + ".done", "w").close()


def run_sampled(command, log_prefix, interval=0.2):
    """Run `command`; return wall seconds and the peak memory of its process tree.

    Memory is sampled every `interval` s and summed over the process and its
    children: `anon` is private memory (RssAnon: what the process allocated),
    `file` is file-backed pages it has mapped (memory-mapped token files,
    which the kernel can drop at will).
    """
    out = open(log_prefix + ".out", "wb")
    err = open(log_prefix + ".err", "wb")
    started = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in command], stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL)
    peak_anon = peak_total = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        anon = total = 0
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                anon += int(fields.get("RssAnon", "0 kB").split()[0]) * 1024
                total += int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
            except (OSError, ValueError, psutil.NoSuchProcess):
                pass
        peak_anon = max(peak_anon, anon)
        peak_total = max(peak_total, total)
        time.sleep(interval)
    wall = time.perf_counter() - started
    out.close()
    err.close()
    if proc.returncode != 0:
        raise bl.BenchError(f"{' '.join(map(str, command))} failed ({proc.returncode}): "
                            + bl.file_tail(log_prefix + ".err"))
    return wall, peak_anon, peak_total
