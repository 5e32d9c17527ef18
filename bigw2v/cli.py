"""The ``bigw2v`` command line: argument parsing and printing only.

Exit codes: ``errors.EXIT_CODES`` (also in every command's --help).
"""

import argparse
import contextlib
import errno
import json
import logging
import os
import sys
import traceback

from dataclasses import fields

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_IO, Bigw2vError, Interrupted, UsageError, exit_codes_text
from .settings import (RAY_FULL_SYNC_EVERY, RAY_HOT_ROWS, RAY_SYNC_LAG, RAY_SYNC_WORDS,
                       TrainSettings, plural)

EPILOG_EXIT_CODES = exit_codes_text()

# train --ray's options (argparse names) and the ray_train.SyncSettings fields they set.
RAY_SYNC_OPTIONS = {"nodes": "nodes", "sync_mode": "mode", "sync_words": "sync_words",
                    "hot_rows": "hot_rows", "full_sync_every": "full_sync_every",
                    "sync_lag": "lag"}


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad option *value* (not a number, out of range, not one
    of the choices) is a one-line error and exit 64, a bad option value like those
    bigw2v checks itself (--sample 2); a bad command line (a missing, unknown or extra
    argument, an unknown command) stays argparse's usage and exit 2."""

    _bad_value = False

    def _get_value(self, action, arg_string):
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError:
            self._bad_value = True
            raise

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            # An unknown command is the command line's shape, not a value.
            self._bad_value = not isinstance(action, argparse._SubParsersAction)
            raise

    def error(self, message):
        if self._bad_value:
            self.exit(UsageError.exit_code, f"{self.prog}: error: {message}\n")
        super().error(message)


def _int_at_least(low):
    """An argparse type: a whole number >= low."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        return value
    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _seconds(text):
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


def build_parser():
    parser = _Parser(
        prog="bigw2v",
        description="Train word2vec embeddings on very large text, in two passes: "
                    "`bigw2v count` builds the vocabulary, `bigw2v train` trains.",
        epilog=EPILOG_EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"bigw2v {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "count", help="pass 1: count the vocabulary of a corpus into a workdir",
        description="Stream the corpus and count every word exactly into Parquet shards in "
                    "WORKDIR, then write WORKDIR/vocab.parquet (words with at least "
                    "--min-count occurrences, most frequent first) and a manifest. Memory "
                    "stays bounded however many distinct words there are. A word is a run of "
                    "bytes other than space, tab, CR and LF; a newline ends a sentence.",
        epilog=EPILOG_EXIT_CODES)
    p.add_argument("corpus", nargs="+", metavar="CORPUS",
                   help="text files, directories (read recursively) or - for stdin "
                        "(.gz .bz2 .xz .zst are decompressed); Parquet, Arrow and JSON Lines "
                        "files (each row a line); a Hugging Face datasets folder; URIs "
                        "s3:// gs:// hdfs:// file://, globs allowed (s3://b/news/2024-*.parquet). "
                        "Standard input is for counting only: train reads the text again, so "
                        "a workdir counted from - cannot be trained on")
    p.add_argument("--text-column", metavar="NAME", default=None,
                   help="the text column of Parquet and Arrow inputs (default: the column "
                        "named text, else the only string column)")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="count on a Ray cluster (pip install 'bigw2v[ray]'): ADDRESS as "
                        "ray.init takes it (auto: the running cluster; ray://host:10001); "
                        "without ADDRESS a local cluster is started. Inputs must be URIs or "
                        "paths every node can read")
    p.add_argument("--text-field", metavar="NAME", default=None,
                   help="the text field of JSON Lines inputs (default: the field named text, "
                        "else the only string field)")
    p.add_argument("-o", "--output", required=True, metavar="WORKDIR",
                   help="directory for the counts (created if missing)")
    p.add_argument("--normalize", choices=("none", "lower", "words"), default="none",
                   help="lower: lower-case every word (Unicode too: Paris and PARIS are "
                        "paris); words: also split words at punctuation and symbols "
                        "(\"Paris,\" is paris, don't is don and t, digits and _ stay). "
                        "Recorded in the workdir; train encodes the text the same way "
                        "(default none: words as they are; docs/formats.md)")
    p.add_argument("--min-count", type=_positive_int, default=5,
                   help="smallest count a word needs to enter vocab.parquet (default 5)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="counting threads (default: all cores)")
    p.add_argument("--no-preflight", action="store_true",
                   help="start even if the workdir's disk looks too small for the counts "
                        "(checked by default: about the size of the text to count)")
    _add_output_flags(p)

    p = sub.add_parser(
        "train", help="pass 2: train vectors on a counted workdir",
        description="Encode the counted corpus to token IDs (cached in WORKDIR) and train "
                    "word2vec into MODELDIR. Defaults are the original C tool's.",
        epilog=EPILOG_EXIT_CODES)
    p.add_argument("workdir", metavar="WORKDIR", help="a directory made by `bigw2v count`")
    p.add_argument("-o", "--output", required=True, metavar="MODELDIR",
                   help="directory for the model (created if missing)")
    # Training options default to None here: TrainSettings holds the defaults, and
    # --resume must tell the options given from those left out (they are the run's).
    p.add_argument("--model", choices=("sg", "cbow"), default=None,
                   help="skip-gram or continuous bag of words (default sg)")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector size (default 100)")
    p.add_argument("--window", type=_positive_int, default=None,
                   help="maximum context reach each side; each word draws 1..window (default 5)")
    p.add_argument("--negative", type=_nonnegative_int, default=None,
                   help="noise words per window for negative sampling, 0 for none (default 5)")
    p.add_argument("--hs", action="store_true", default=None,
                   help="hierarchical softmax (with --negative 0 for HS alone)")
    p.add_argument("--sample", type=_float, default=None,
                   help="subsampling threshold for frequent words, 0 for none (default 1e-3)")
    p.add_argument("--epochs", "--iter", type=_positive_int, default=None,
                   help="passes over the corpus (default 5)")
    p.add_argument("--alpha", type=_float, default=None,
                   help="starting learning rate (default 0.025 sg, 0.05 cbow)")
    p.add_argument("--min-alpha", type=_float, default=None,
                   help="final learning rate; falls linearly over all epochs (default alpha*1e-4)")
    p.add_argument("--min-count", type=_positive_int, default=None,
                   help="drop words rarer than this (default: the workdir's count setting)")
    p.add_argument("--max-vocab", type=_positive_int, default=None,
                   help="keep only the N most frequent words")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="training threads (default: all cores)")
    p.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="random seed; with --threads 1 runs are bit-identical (default 1)")
    p.add_argument("--cbow-mean", type=int, choices=(0, 1), default=None,
                   help="CBOW: 1 averages the context vectors, 0 sums them (default 1)")
    p.add_argument("--chunk-words", type=_positive_int, default=None,
                   help="words per unit of parallel work (default 65536)")
    g = p.add_argument_group("checkpoints, resuming and warm starts")
    g.add_argument("--checkpoint-every", type=_seconds, default=600, metavar="SECONDS",
                   help="copy the weights and the progress to MODELDIR/checkpoint-N this "
                        "often, and at epoch ends (unless one was written in the last "
                        "5 s); 0 turns checkpoints off (default 600)")
    g.add_argument("--resume", action="store_true",
                   help="continue the unfinished run in MODELDIR from its last checkpoint, "
                        "to the same end; options left out are the run's (starts a new run "
                        "if there is none)")
    g.add_argument("--force", action="store_true",
                   help="start over even if MODELDIR holds an unfinished run, or replace "
                        "the finished model it holds (refused without --force)")
    g.add_argument("--init-from", metavar="MODEL", default=None,
                   help="warm start: words MODEL knows start from its vectors, new words "
                        "start fresh; same --dim. MODEL is an older model directory (input "
                        "and output vectors) or a word2vec file (.bin, .txt, .vec, "
                        "compressed too: the word vectors). For fine-tuning consider a lower "
                        "--alpha (see docs/cron.md)")
    g = p.add_argument_group("on a Ray cluster (pip install 'bigw2v[ray]'; docs/distributed.md)")
    g.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="train with one actor per node: ADDRESS as ray.init takes it (auto: "
                        "the running cluster; ray://host:10001); without ADDRESS a local "
                        "cluster is started. The counted inputs must be URIs or paths every "
                        "node can read")
    g.add_argument("--nodes", type=_positive_int, default=None,
                   help="nodes to train on (default: every node of the cluster)")
    g.add_argument("--sync-mode", choices=("sum", "average"), default=None,
                   help="combine the nodes' rows: add up their changes since the last sync, "
                        "as Hogwild threads do on one machine (default), or average the rows "
                        "(pWord2Vec's way: as if the learning rate were divided by the nodes)")
    g.add_argument("--sync-words", type=_positive_int, default=None,
                   help=f"words a node trains between two syncs (default {RAY_SYNC_WORDS:,} for "
                        "each of its cores)")
    g.add_argument("--hot-rows", type=_nonnegative_int, default=None,
                   help=f"most frequent rows averaged after every round; twice as many after "
                        f"every second round, and so on (default {RAY_HOT_ROWS})")
    g.add_argument("--full-sync-every", type=_positive_int, default=None, metavar="ROUNDS",
                   help=f"rounds between two averagings of every row (also at each epoch's "
                        f"end; default {RAY_FULL_SYNC_EVERY})")
    g.add_argument("--sync-lag", type=_nonnegative_int, default=None, metavar="ROUNDS",
                   help=f"rounds a node trains on before the other nodes' changes of a round "
                        f"reach it: 0 waits for them (default {RAY_SYNC_LAG}: they are "
                        f"combined while the nodes train)")
    p.add_argument("--no-preflight", action="store_true",
                   help="start even if the weights look too big for the available memory or "
                        "the files too big for the free disk (checked by default; a refusal "
                        "suggests a --max-vocab that fits)")
    _add_output_flags(p)

    p = sub.add_parser(
        "phrases", help="join frequent word pairs into phrases (word2phrase, exact counts)",
        description="Find phrases in a counted WORKDIR as the C tool's word2phrase does "
                    "(new york -> new_york; a second pass makes new_york_times), with exact "
                    "pair counts in bounded memory. Writes WORKDIR/phrases.parquet and the "
                    "joined corpus in WORKDIR/phrases/, which `train` then trains on "
                    "(docs/formats.md). Finding no phrase is not an error.",
        epilog=EPILOG_EXIT_CODES)
    p.add_argument("workdir", metavar="WORKDIR", help="a workdir made by `bigw2v count`")
    p.add_argument("--passes", type=_positive_int, default=2,
                   help="passes, each on the previous one's joined tokens (default 2)")
    p.add_argument("--threshold", default=None, metavar="T1,T2,...",
                   help="score a pair must exceed, per pass (the last repeats; default "
                        "200,100 for the default scorer, 0.5 for npmi)")
    p.add_argument("--min-count", type=_positive_int, default=5,
                   help="least count of a word and of a pair (default 5, word2phrase's)")
    p.add_argument("--delimiter", default="_", help="joins the words of a phrase (default _)")
    p.add_argument("--scorer", choices=("default", "npmi"), default="default",
                   help="default: word2phrase's (n_ab - min_count) / n_a / n_b * "
                        "train_words; npmi: normalised PMI in [-1, 1] (gensim's)")
    p.add_argument("--connectors", default=None, metavar="en|FILE",
                   help="words a phrase may hold but not start or end with (en: gensim 4's "
                        "English connector words; FILE: one word a line); default none")
    p.add_argument("--write-text", default=None, metavar="OUT",
                   help="also write the joined corpus as text (a line per line, - for "
                        "standard output)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads (default: all cores)")
    _add_output_flags(p)

    p = sub.add_parser(
        "publish", help="point a link at a finished model, atomically",
        description="Check that MODELDIR holds a finished model, then make LINK (a symbolic "
                    "link) point to it in one atomic rename: a reader following LINK sees "
                    "the old model or the new one, never a mix or a half-written one.",
        epilog=EPILOG_EXIT_CODES)
    p.add_argument("model", metavar="MODELDIR")
    p.add_argument("link", metavar="LINK", help="the symbolic link readers use, e.g. models/latest")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")

    p = sub.add_parser(
        "info", help="what a model directory, an unfinished run or a workdir holds",
        description="Print a model's settings, figures and file sizes (from its model.json), "
                    "an unfinished run's settings and progress, or a workdir's count "
                    "(inputs, tokens, vocabulary, settings) and encodings. Reads no vectors: "
                    "instant at any size.",
        epilog=EPILOG_EXIT_CODES)
    p.add_argument("path", metavar="DIR", help="a model directory (or a published link to one) "
                                               "or a workdir")
    p.add_argument("--json", action="store_true", help="print it as JSON")

    p = sub.add_parser("similar", help="nearest neighbours of a word",
                       description="Print the words closest to WORD by cosine similarity.")
    _add_model_arguments(p)
    p.add_argument("word", metavar="WORD")
    p.add_argument("-n", type=_positive_int, default=10, help="how many (default 10)")

    p = sub.add_parser("analogy", help="A is to B as C is to ?",
                       description="3CosAdd, like the C tool's word-analogy: the words closest "
                                   "to B - A + C (unit vectors), the three excluded.")
    _add_model_arguments(p)
    # Three positionals: argparse cannot format a tuple metavar on one (Python 3.11).
    p.add_argument("a", metavar="A", help="a word, e.g. man")
    p.add_argument("b", metavar="B", help="its counterpart, e.g. king")
    p.add_argument("c", metavar="C", help="the word to complete, e.g. woman")
    p.add_argument("-n", type=_positive_int, default=10, help="how many (default 10)")

    p = sub.add_parser("export", help="write vectors in the C tool's formats or as Parquet",
                       description="Write the vectors as the original word2vec tool does "
                                   "(binary or text: read by gensim's "
                                   "KeyedVectors.load_word2vec_format and the C tool's "
                                   "distance), or as a Parquet table (word, count, vector: "
                                   "read by DuckDB, Polars, Spark; docs/formats.md).")
    _add_model_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="- for standard output; a device or a pipe is written through; a "
                        "symbolic link is followed (the file it names is replaced, the link "
                        "stays); a regular file is replaced atomically when complete")
    p.add_argument("--format", choices=("binary", "text", "parquet"), default="binary",
                   help="binary (default), text or parquet")

    p = sub.add_parser(
        "eval", help="score vectors on analogies and word-pair similarity",
        description="The standard protocol: analogies by 3CosAdd over unit vectors among the "
                    "--restrict-vocab most frequent words, case-insensitive, questions with an "
                    "unknown word skipped and counted; word pairs by Spearman correlation of "
                    "cosine similarity.")
    _add_model_arguments(p)
    p.add_argument("--analogies", metavar="FILE", help="questions-words.txt format")
    p.add_argument("--restrict-vocab", type=_positive_int, default=30000,
                   help="search only this many most frequent words (default 30000)")
    p.add_argument("--pairs", nargs="+", default=[], metavar="FILE",
                   help="word-pair files (word1 TAB word2 TAB score), e.g. WordSim353")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _add_model_arguments(p):
    p.add_argument("model", metavar="MODEL",
                   help="a model directory, or a word2vec file (.bin, .txt, .vec: binary or "
                        "text, also .gz .bz2 .xz .zst, recognised from the content) or a "
                        "Parquet export")
    p.add_argument("--limit", type=_nonnegative_int, default=None, metavar="N",
                   help="read only the first N words (the most frequent, in files from the C "
                        "tool, gensim or fastText)")


def _add_output_flags(p):
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="print a machine-readable summary on stdout")


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


@contextlib.contextmanager
def _stray_output_to_stderr(active):
    """While ``active``, whatever is written to file descriptor 1 goes to stderr.

    Ray's processes (raylets started for a local cluster, the core worker's
    C++ threads) can write to the standard output they inherit; stdout
    carries only the command's result (``--json``), so during the Ray work
    descriptor 1 points at stderr, and processes started then keep it so.
    """
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_count(args):
    from .counter import count
    with _stray_output_to_stderr(args.ray is not None):
        manifest = count(args.corpus, args.output, min_count=args.min_count,
                         threads=args.threads, progress=not args.quiet,
                         preflight=not args.no_preflight, text_column=args.text_column,
                         text_field=args.text_field, ray=args.ray, normalize=args.normalize)
    if args.json:
        print(json.dumps(manifest, indent=1))
    t = manifest["totals"]
    if manifest["last_run"].get("up_to_date"):
        # Nothing was read: the figures are the earlier count's, not this run's.
        print(f"nothing to count: {_human(t['tokens'])} words ({t['distinct_words']:,} "
              f"distinct) as counted {manifest['created']}; {t['vocab_words']:,} words with "
              f"count >= {args.min_count} in {os.path.join(args.output, 'vocab.parquet')}",
              file=sys.stderr)
        return
    print(f"counted {_human(t['tokens'])} words ({t['distinct_words']:,} distinct) in "
          f"{plural(len(manifest['inputs']), 'input')} in {manifest['seconds']:.1f} s; "
          f"{t['vocab_words']:,} words with count >= {args.min_count} "
          f"-> {os.path.join(args.output, 'vocab.parquet')}", file=sys.stderr)


# Every training setting is a `train` option of the same name (dashes for underscores).
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainSettings))


def cmd_train(args):
    from .trainer import train
    given = {name: getattr(args, name) for name in TRAIN_OPTIONS
             if getattr(args, name) is not None}
    if "cbow_mean" in given:
        given["cbow_mean"] = bool(given["cbow_mean"])
    ray_sync = None
    if args.ray is not None:
        from .ray_train import SyncSettings
        sync = {field: getattr(args, option) for option, field in RAY_SYNC_OPTIONS.items()
                if getattr(args, option) is not None}
        ray_sync = SyncSettings(**sync)
    with _stray_output_to_stderr(args.ray is not None):
        info = train(args.workdir, args.output, progress=not args.quiet, resume=args.resume,
                     force=args.force, init_from=args.init_from,
                     checkpoint_every=args.checkpoint_every, preflight=not args.no_preflight,
                     ray=args.ray, ray_sync=ray_sync, **given)
    f, s = info["figures"], info["settings"]
    if args.json:
        print(json.dumps(info, indent=1))
    resumed = f" in {f['sessions']} sessions" if f.get("sessions", 1) > 1 else ""
    print(f"trained {s['model']} dim {s['dim']}: {info['vocab_size']:,} words, "
          f"{_human(f['corpus_tokens'])} tokens x {plural(s['epochs'], 'epoch')} in "
          f"{f['train_seconds']:.1f} s{resumed} ({_human(f['words_per_second'])} words/s, "
          f"{plural(s['threads'], 'thread')}), final loss {f['final_loss']:.4f} -> {args.output}",
          file=sys.stderr)
    if info.get("phrases"):
        print(f"trained on phrase set {info['phrases']['phrase_set']} "
              f"({info['phrases']['phrases']:,} phrases)", file=sys.stderr)


def cmd_phrases(args):
    from .phraser import phrases
    info = phrases(args.workdir, passes=args.passes, threshold=args.threshold,
                   min_count=args.min_count, delimiter=args.delimiter, scorer=args.scorer,
                   connectors=args.connectors, write_text=args.write_text,
                   threads=args.threads, progress=not args.quiet)
    if args.json:
        print(json.dumps(info, indent=1))
    per_pass = ", ".join(f"pass {p['pass']} (> {p['threshold']:g}): {p['phrases']:,}"
                         for p in info["passes"])
    print(_phrases_reuse(info["figures"]["encoding_reused"]), file=sys.stderr)
    if info["phrases"] == 0:
        print(f"0 phrases: no pair scored above the threshold ({per_pass}) in "
              f"{info['figures']['seconds']:.1f} s; train will train on words", file=sys.stderr)
        return
    print(f"{info['phrases']:,} phrases ({per_pass}) in {info['figures']['seconds']:.1f} s; "
          f"{_human(info['tokens'])} tokens after joining -> "
          f"{os.path.join(args.workdir, 'phrases.parquet')} (phrase set "
          f"{info['phrase_set']})", file=sys.stderr)


def _phrases_reuse(reused):
    """What `phrases` reused and what it recomputed (cron runs it after every count)."""
    if reused:
        return ("reused the corpus's encoding (the count is unchanged); recomputed every "
                "pass's pair counts and joins")
    return ("encoded the corpus (first run, or the count changed: a grown corpus renumbers "
            "the words) and recomputed every pass: pair counts and scores depend on the "
            "whole corpus's counts")


def cmd_publish(args):
    from .publisher import publish
    summary = publish(args.model, args.link)
    if args.json:
        print(json.dumps(summary, indent=1))
    print(f"published {summary['model']} as {summary['link']}", file=sys.stderr)


def cmd_info(args):
    from .info import describe, format_info
    d = describe(args.path)
    print(json.dumps(d, indent=1) if args.json else format_info(d))


def _load(args):
    from .vectors import load
    return load(args.model, limit=args.limit)


def _print_neighbours(pairs):
    for word, score in pairs:
        print(f"{score:.4f}  {word}")


def cmd_similar(args):
    _print_neighbours(_load(args).most_similar(args.word, topn=args.n))


def cmd_analogy(args):
    _print_neighbours(_load(args).analogy(args.a, args.b, args.c, topn=args.n))


def cmd_export(args):
    from .vectors import save_parquet, save_word2vec_format
    vectors = _load(args)
    if args.format == "parquet":
        save_parquet(vectors, args.output)
    else:
        save_word2vec_format(vectors, args.output, binary=args.format == "binary")
    where = "standard output" if args.output == "-" else args.output
    print(f"wrote {len(vectors):,} vectors of dim {vectors.dim} to {where} "
          f"({args.format})", file=sys.stderr)


def cmd_eval(args):
    from .errors import UsageError
    from .evaluate import evaluate_analogies, evaluate_pairs, format_report
    if not args.analogies and not args.pairs:
        raise UsageError("give --analogies FILE and/or --pairs FILE...")
    vectors = _load(args)
    analogies = None
    if args.analogies:
        analogies = evaluate_analogies(vectors, args.analogies,
                                       restrict_vocab=args.restrict_vocab)
    pairs = [evaluate_pairs(vectors, path) for path in args.pairs]
    if args.json:
        print(json.dumps({"analogies": analogies, "pairs": pairs}, indent=1))
    else:
        print(format_report(analogies, pairs))


COMMANDS = {"count": cmd_count, "train": cmd_train, "phrases": cmd_phrases,
            "publish": cmd_publish,
            "similar": cmd_similar, "analogy": cmd_analogy, "export": cmd_export,
            "eval": cmd_eval, "info": cmd_info}


def main(argv=None):
    args = build_parser().parse_args(argv)
    # What happened (resumed, checkpointed, reused, warm-started) goes to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"bigw2v {args.command}: %(message)s")
    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()
    except Bigw2vError as e:
        print(f"bigw2v {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"bigw2v {args.command}: interrupted", file=sys.stderr)
        return Interrupted.exit_code
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"bigw2v {args.command}: error: no space left on device"
                  f"{' writing ' + e.filename if e.filename else ''}", file=sys.stderr)
            return EXIT_IO
        print(f"bigw2v {args.command}: error: {e}", file=sys.stderr)
        return EXIT_IO
    except MemoryError:
        print(f"bigw2v {args.command}: error: out of memory; lower --max-vocab or --dim, "
              "or raise --min-count", file=sys.stderr)
        return EXIT_IO
    except Exception:  # a bug: say so, with what is needed to report it
        traceback.print_exc()
        print(f"bigw2v {args.command}: internal error (a bug in bigw2v; please report it "
              "with the traceback above)", file=sys.stderr)
        return EXIT_INTERNAL
    return 0


def _skip_numba_blas_probe():
    """Keep Numba from importing SciPy's linear algebra when it starts.

    On import Numba checks whether ``scipy.linalg.cython_blas`` can be
    imported, for ``np.dot`` and ``np.linalg`` in compiled code; where SciPy
    is installed that import pulls in most of SciPy and NumPy's f2py, about
    0.08-0.11 s of every command's start (measured: median of 8 runs of
    ``count`` and of ``train`` on a tiny corpus). bigw2v's compiled code uses
    neither, so the ``bigw2v`` command marks that module missing before
    anything imports Numba; imported as a library, bigw2v leaves imports alone.
    """
    sys.modules.setdefault("scipy.linalg.cython_blas", None)


def run(argv=None):
    """The ``bigw2v`` command: ``main``, then an exit that skips the interpreter's teardown.

    Tearing down an interpreter that has loaded Numba, LLVM and Arrow takes
    0.1-0.2 s, as long as counting 100 MB. Nothing is left to do at that
    point: every file bigw2v writes is complete (closed, fsynced, renamed)
    before ``main`` returns, and its thread pools are shut down; only the
    standard streams and logging need flushing.
    """
    _skip_numba_blas_probe()
    code = main(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or EXIT_IO
    os._exit(code)


if __name__ == "__main__":
    run()
