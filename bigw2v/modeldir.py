"""The model directory's file contract: what ``train`` writes and ``load`` reads.

A MODELDIR holds (docs/formats.md):

- ``vectors.npy`` (and ``output_vectors.npy``, ``hs_vectors.npy`` when the
  run has them): the weights, float32, memory-mapped while training;
- ``run.json`` while a run is unfinished: what it was started with;
- ``checkpoint-NNNNNN/`` while a run is unfinished (``checkpoint.py``);
- ``vocab.parquet`` and, last, ``model.json``: model.json alone marks the
  model finished.

This module knows these names and formats, which files in a directory are
ours, and clears an old model before a new run.
"""

import json
import os

from . import checkpoint
from .errors import Bigw2vError, InputDataError, OutputError, write_failed

MODEL_FORMAT = "bigw2v-model"
MODEL_VERSION = 1
MODEL_NAME = "model.json"
RUN_FORMAT = "bigw2v-run"
RUN_VERSION = 1
RUN_NAME = "run.json"
VECTORS_NAME = "vectors.npy"
OUTPUT_VECTORS_NAME = "output_vectors.npy"
HS_VECTORS_NAME = "hs_vectors.npy"
MODEL_FILES = (MODEL_NAME, "vocab.parquet", VECTORS_NAME, OUTPUT_VECTORS_NAME,
               HS_VECTORS_NAME, "eval.json")  # eval.json: written by bin/bigw2v-cron


def weight_files(s):
    """The weight files a run with settings ``s`` has, in MODELDIR."""
    names = [VECTORS_NAME]
    if s.negative > 0:
        names.append(OUTPUT_VECTORS_NAME)
    if s.hs:
        names.append(HS_VECTORS_NAME)
    return names


def is_ours(name):
    """Whether a file named ``name`` in a MODELDIR is one a run writes (or a hidden one)."""
    return (name in MODEL_FILES or name == RUN_NAME or name.startswith(".")
            or checkpoint.is_checkpoint_name(name))


def replaced_by_a_run(name):
    """Whether a new run replaces the file ``name`` (its space counts as free)."""
    return (name in MODEL_FILES or name == RUN_NAME or name.startswith(".checkpoint-")
            or checkpoint.is_checkpoint_name(name))


def check_model_dir(modeldir):
    """Refuse a MODELDIR that is a file or holds files that are not a bigw2v model."""
    if os.path.isfile(modeldir):
        raise OutputError(f"{modeldir} is a file, not a directory")
    if os.path.isdir(modeldir):
        extra = [n for n in os.listdir(modeldir) if not is_ours(n)]
        if extra:
            raise OutputError(
                f"{modeldir} holds files that are not a bigw2v model ({', '.join(sorted(extra)[:3])}"
                "...): choose an empty or new directory")


def clear_model_dir(modeldir):
    """Remove an old model or run from MODELDIR, model.json first."""
    try:
        # Unmark the old model first: from here on, a crash leaves no valid-looking model.
        for name in MODEL_FILES + (RUN_NAME,):
            try:
                os.remove(os.path.join(modeldir, name))
            except FileNotFoundError:
                pass
        checkpoint.remove_all(modeldir)
        probe = os.path.join(modeldir, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise write_failed(f"cannot write to {modeldir}", e) from None


def read_json(path):
    """A JSON file's content, None if it is absent; unreadable is an InputDataError."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputDataError(f"{path} is unreadable ({e}): pass --force to start over") from None


def read_run(modeldir):
    """run.json of the run in MODELDIR, or None."""
    return read_json(os.path.join(modeldir, RUN_NAME))


def finished_model(modeldir):
    """model.json of a finished model in MODELDIR, or None."""
    info = read_json(os.path.join(modeldir, MODEL_NAME))
    if isinstance(info, dict) and info.get("format") == MODEL_FORMAT and info.get("complete"):
        return info
    return None


def describe_run(modeldir, run):
    """Where an unfinished run got to, from its newest checkpoint (not verified)."""
    for path in [p for _, p in checkpoint.list_checkpoints(modeldir)][:1]:
        try:
            progress = read_json(os.path.join(path, checkpoint.STATE_NAME))["progress"]
            where = "round" if progress.get("positions") else "chunk"
            return (f"checkpoint at epoch {progress['epoch'] + 1}/{run['settings']['epochs']}, "
                    f"{where} {progress['next_chunk']}")
        except (Bigw2vError, TypeError, KeyError):
            return "its newest checkpoint is unreadable"
    return "no checkpoint yet"
