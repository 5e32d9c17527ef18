"""``bigw2v info``: what a model directory, an unfinished run or a workdir holds.

Read from the files' own records (``model.json``, ``run.json``, ``count.json``)
and the sizes on disk; nothing is loaded, so it is instant for any size.
"""

import os

from .errors import MissingInputError
from .modeldir import MODEL_NAME, RUN_NAME, describe_run, finished_model, read_json, read_run
from .preflight import tree_bytes
from .workdir import ENCODED_DIR, ENCODED_META, MANIFEST_NAME, encoding_dir, listdir, read_manifest


def _files(directory):
    """{name: bytes} of what a directory holds (hidden names left out), largest first."""
    sizes = {name: tree_bytes(os.path.join(directory, name)) for name in os.listdir(directory)
             if not name.startswith(".")}
    return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))


def describe(path):
    """A dict describing ``path``: ``kind`` is "model", "run" (unfinished) or "workdir"."""
    if not os.path.isdir(path):
        what = "a file" if os.path.exists(path) else "missing"
        raise MissingInputError(f"{path} is {what}: info reads a model directory or a workdir")
    real = os.path.realpath(path)
    where = {"path": os.path.abspath(path)}
    if real != os.path.abspath(path):
        where["link_to"] = real
    model = finished_model(real)
    if model is not None:
        files = _files(real)
        return {"kind": "model", **where, **{k: model.get(k) for k in (
            "vocab_size", "dim", "settings", "normalize", "figures", "workdir", "init_from",
            "warm_start", "created")}, "files": files, "bytes": sum(files.values())}
    run = read_run(real)
    if run is not None:
        files = _files(real)
        return {"kind": "run", **where, **{k: run.get(k) for k in (
            "vocab_size", "settings", "normalize", "workdir", "init_from", "started")},
            "progress": describe_run(real, run), "files": files, "bytes": sum(files.values())}
    if os.path.exists(os.path.join(real, MANIFEST_NAME)):
        manifest = read_manifest(real)
        files = _files(real)
        encodings = []
        for key in listdir(os.path.join(real, ENCODED_DIR)):
            meta = read_json(os.path.join(encoding_dir(real, key), ENCODED_META))
            if isinstance(meta, dict):
                encodings.append({"key": key, "tokens": meta.get("tokens"),
                                  "vocab_size": meta.get("vocab_size")})
        return {"kind": "workdir", **where, "inputs": len(manifest["inputs"]),
                "totals": manifest["totals"], "settings": manifest.get("settings", {}),
                "created": manifest.get("created"), "seconds": manifest.get("seconds"),
                "encodings": encodings, "files": files, "bytes": sum(files.values())}
    raise MissingInputError(f"{path} holds no bigw2v model, run or count (no {MODEL_NAME}, "
                            f"{RUN_NAME} or {MANIFEST_NAME})")


def _bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _count(n, word):
    """``n word`` with the word's plural when n is not 1 (``1 epoch``, ``2 epochs``)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _settings(settings, skip=()):
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in settings.items()
                     if k not in skip and v is not None)


def format_info(d):
    """``describe``'s dict as a few lines of text."""
    head = d["path"] + (f" (a link to {d['link_to']})" if "link_to" in d else "")
    files = ", ".join(f"{name} {_bytes(n)}" for name, n in d["files"].items())
    lines = []
    if d["kind"] in ("model", "run"):
        s = d["settings"] or {}
        if d["kind"] == "model":
            lines.append(f"model {head}")
        else:
            lines.append(f"unfinished run {head}: started {d['started']}, {d['progress']} "
                         "(--resume continues it, --force starts over)")
        lines.append(f"  {s.get('model')}, dim {s.get('dim')}, "
                     f"{_count(d['vocab_size'] or 0, 'word')}, "
                     f"{_count(s.get('epochs') or 0, 'epoch')}"
                     + (f", text normalised: {d['normalize']}" if d.get("normalize") else ""))
        lines.append(f"  settings: {_settings(s, skip=('model', 'dim', 'epochs'))}")
        f = d.get("figures")
        if f:
            lines.append(f"  trained on {f['corpus_tokens']:,} tokens "
                         f"({_count(f['sentences'], 'sentence')}) in {f['train_seconds']:.1f} s "
                         f"({f['words_per_second']:,} words/s), final loss {f['final_loss']:.4f},"
                         f" {_count(f['sessions'], 'session')}, "
                         f"{_count(f['checkpoints'], 'checkpoint')}")
        lines.append(f"  from workdir {d['workdir']}"
                     + (f", warm-started from {d['init_from']}" if d.get("init_from") else ""))
        if d.get("warm_start"):
            w = d["warm_start"]
            lines.append(f"  warm start: {w['known_words']:,} words kept their vectors, "
                         f"{w['new_words']:,} new")
        if d.get("created"):
            lines.append(f"  created {d['created']}")
    else:
        t, s = d["totals"], d["settings"]
        lines.append(f"workdir {head}: counted {d['created']} in {d['seconds']:.1f} s")
        lines.append(f"  {_count(d['inputs'], 'input')}, {t['tokens']:,} tokens, "
                     f"{_count(t['sentences'], 'sentence')}, {t['distinct_words']:,} distinct "
                     f"words; {t['vocab_words']:,} with count >= {s.get('min_count')} "
                     f"({t['vocab_tokens']:,} tokens) in vocab.parquet")
        lines.append(f"  settings: {_settings(s)}")
        for e in d["encodings"]:
            lines.append(f"  encoded for training ({e['key']}): {e['tokens']:,} tokens of "
                         f"{e['vocab_size']:,} words")
    lines.append(f"  files: {files}; {_bytes(d['bytes'])} in all")
    return "\n".join(lines)
