"""Trained word vectors: loading, similarity queries, and the files other tools read.

A trained model directory holds ``vectors.npy`` (the input vectors, one row
per vocabulary word, most frequent first) next to ``vocab.parquet``. ``load``
memory-maps the matrix so that opening a 3M-word model costs only the
vocabulary; it also reads a word2vec file (the C tool's binary or text format,
gensim's and fastText's ``.vec``, compressed or not; ``w2vfile.py``) or our
Parquet export, recognised from the content, with ``limit`` for the first rows.

``save_word2vec_format`` / ``save_parquet`` write the vectors for other tools
(the C tool's ``distance``, gensim; DuckDB, Polars, Spark), and
``Vectors.to_gensim`` hands them to gensim in memory. Exports write through to
devices, pipes and standard output (``-``), follow a symbolic link to the file
it names, and replace a regular file atomically.
"""

import contextlib
import json
import os
import stat
import string
import sys

import numpy as np

from .errors import InputDataError, MissingInputError, OutputError, UsageError, write_failed
from .modeldir import MODEL_FORMAT, MODEL_NAME, MODEL_VERSION, VECTORS_NAME


# Rows per block when a whole-matrix operation is done piecewise (at most;
# fewer for wide vectors: ``rows_per_block``), so that float64 temporaries
# stay at about BLOCK_BYTES whatever the vocabulary size and the dimension.
ROW_BLOCK = 65536
BLOCK_BYTES = 16 * 2**20

# Scores held at once by a batch of queries (floats): bounds the score matrix
# of most_similar_batch to 128 MB whatever the vocabulary and the batch.
SCORE_FLOATS = 32 * 2**20

# Bytes the C tool and gensim treat as word separators; a word containing one
# cannot be written in the word2vec formats and read back as the same word.
VECTOR_FILE_SEPARATORS = (9, 10, 11, 12, 13, 32)

PARQUET_MAGIC = b"PAR1"


class UnknownWordError(InputDataError, KeyError):
    """A queried word is not in the vocabulary.

    Also a KeyError so that dict-like code (``try: v[w] except KeyError``) works.
    ``suggestions``: spellings the vocabulary has (a list, or a function giving
    one, called only when the message is wanted: a lookup that misses stays cheap).
    """

    def __init__(self, word, suggestions=()):
        super().__init__(f"word {word!r} is not in the vocabulary")
        self.word = word
        self._suggestions = suggestions

    @property
    def suggestions(self):
        if callable(self._suggestions):
            self._suggestions = self._suggestions()
        return list(self._suggestions)

    # KeyError.__str__ would repr() the message and add quotes around it.
    def __str__(self):
        if self.suggestions:
            return f"{self.args[0]}; did you mean {' or '.join(map(repr, self.suggestions))}?"
        return self.args[0]


def rows_per_block(dim):
    """Rows of `dim` float64 values that fill about BLOCK_BYTES (at most ROW_BLOCK)."""
    return max(1, min(ROW_BLOCK, BLOCK_BYTES // (8 * max(1, dim))))


def _blocks_with_norms(matrix):
    """(first row, float64 block of rows, their L2 norms), block after block of `matrix`.

    Blocks keep a memory-mapped matrix's float64 copy small, whatever its size.
    """
    step = rows_per_block(matrix.shape[1])
    for start in range(0, matrix.shape[0], step):
        block = np.asarray(matrix[start:start + step], dtype=np.float64)
        yield start, block, np.sqrt(np.einsum("ij,ij->i", block, block))


def unit_rows(matrix):
    """Return a float32 copy of `matrix` with every row scaled to unit L2 norm.

    All-zero rows stay zero (instead of becoming NaN), so they have cosine 0
    with everything and are never anyone's nearest neighbour by accident.
    """
    matrix = np.asarray(matrix)
    out = np.empty(matrix.shape, dtype=np.float32)
    for start, block, norms in _blocks_with_norms(matrix):
        norms[norms == 0.0] = 1.0
        out[start:start + block.shape[0]] = block / norms[:, None]
    return out


def inverse_norms(matrix):
    """1 / the L2 norm of every row of `matrix` as float32 (0 for an all-zero row)."""
    matrix = np.asarray(matrix)
    out = np.empty(matrix.shape[0], dtype=np.float32)
    for start, block, norms in _blocks_with_norms(matrix):
        with np.errstate(divide="ignore"):
            out[start:start + block.shape[0]] = np.where(norms > 0.0, 1.0 / norms, 0.0)
    return out


class Vectors:
    """Word vectors with their vocabulary; row i of `vectors` belongs to `words[i]`.

    `vectors` may be a read-only memmap; it is never written. `counts` (corpus
    frequencies, or None when unknown) is kept for reporting. When a word occurs
    twice, lookups find its first (most frequent) row.
    """

    def __init__(self, words, vectors, counts=None):
        vectors = np.asanyarray(vectors)  # keeps a memmap a memmap
        if vectors.ndim != 2:
            raise InputDataError(f"vectors must be a 2-d matrix, got shape {vectors.shape}")
        if vectors.dtype != np.float32:
            vectors = vectors.astype(np.float32)
        words = list(words)
        if len(words) != vectors.shape[0]:
            raise InputDataError(
                f"{len(words)} words but {vectors.shape[0]} vector rows; they must match"
            )
        if counts is not None:
            counts = np.asarray(counts, dtype=np.int64)
            if counts.shape != (len(words),):
                raise InputDataError(f"{len(words)} words but {counts.shape[0]} counts")
        self.words = words
        self.vectors = vectors
        self.counts = counts
        # Built from the end so that for a repeated word the earliest row wins.
        self.word_to_index = dict(zip(reversed(words), range(len(words) - 1, -1, -1)))
        self._unit_vectors = None
        self._inverse_norms = None

    @property
    def dim(self):
        return self.vectors.shape[1]

    def __len__(self):
        return len(self.words)

    def __contains__(self, word):
        return word in self.word_to_index

    def __repr__(self):
        return f"Vectors({len(self)} words, dim {self.dim})"

    def index(self, word):
        """Row number of `word`; UnknownWordError if it is not in the vocabulary.

        The error suggests the spellings the vocabulary has (``spellings_of``):
        'Paris' in a model of lower-cased text (count --normalize) is 'paris'.
        """
        try:
            return self.word_to_index[word]
        except KeyError:
            raise UnknownWordError(word, lambda: self.spellings_of(word)) from None

    def spellings_of(self, word, limit=3):
        """Up to `limit` words that differ from `word` only in case or in punctuation at
        their ends, most frequent first (for a query that missed: scans the vocabulary)."""
        def folded(w):
            return w.strip(string.punctuation + "\u2018\u2019\u201c\u201d").casefold()

        key = folded(word)
        if not key:
            return []
        found = {w for w in (key, word.lower(), word.capitalize(), word.title(), word.upper())
                 if w in self.word_to_index}
        if not found:
            found = {w for w in self.words if folded(w) == key}
        found.discard(word)
        return sorted(found, key=self.word_to_index.get)[:limit]

    def __getitem__(self, word):
        return self.vectors[self.index(word)]

    def unit_vectors(self, limit=None):
        """L2-normalised float32 copy of the vectors (zero rows stay zero).

        The full matrix is computed once and cached (a second matrix the size of
        the vectors: the queries below do not need it). With `limit`, only the
        first `limit` rows are wanted: they are sliced from the cache when it
        exists, else normalised on their own so that evaluating against the
        30,000 most frequent words of a huge vocabulary stays cheap.
        """
        if self._unit_vectors is not None:
            return self._unit_vectors if limit is None else self._unit_vectors[:limit]
        if limit is not None and limit < len(self):
            return unit_rows(self.vectors[:limit])
        self._unit_vectors = unit_rows(self.vectors)
        return self._unit_vectors

    def unit_vector(self, word):
        """The unit-length vector of one word, without normalising the whole matrix."""
        if self._unit_vectors is not None:
            return self._unit_vectors[self.index(word)]
        return unit_rows(self.vectors[self.index(word)][None, :])[0]

    def inverse_norms(self, limit=None):
        """1 / the length of each row (0 for a zero row), float32; cached for all rows.

        Cosines are then ``(vectors @ unit_query) * inverse_norms``: the queries
        need one float per word besides the vectors, not a normalised copy.
        """
        if self._inverse_norms is not None:
            return self._inverse_norms if limit is None else self._inverse_norms[:limit]
        if limit is not None and limit < len(self):
            return inverse_norms(self.vectors[:limit])
        self._inverse_norms = inverse_norms(self.vectors)
        return self._inverse_norms

    def similarity(self, a, b):
        """Cosine similarity of words `a` and `b` (0.0 if either vector is zero)."""
        return float(np.dot(self.unit_vector(a), self.unit_vector(b)))

    def _query(self, positive, negative):
        """(unit query vector float32, rows of its words) of one most_similar query."""
        if isinstance(positive, str):
            positive = [positive]
        if isinstance(negative, str):
            negative = [negative]
        positive, negative = list(positive), list(negative)
        if not positive and not negative:
            raise UsageError("most_similar needs at least one positive or negative word")
        rows = [self.index(w) for w in positive + negative]
        query = np.zeros(self.dim, dtype=np.float64)
        for word in positive:
            query += self.unit_vector(word)
        for word in negative:
            query -= self.unit_vector(word)
        norm = np.linalg.norm(query)
        if norm > 0:
            query /= norm
        return query.astype(np.float32), rows

    def most_similar(self, positive, negative=(), topn=10, restrict_vocab=None):
        """Words nearest to the sum of `positive` minus `negative` words (3CosAdd).

        As in gensim and the C tool: the unit vectors of the positive words are
        added, those of the negative words subtracted, and the result is compared
        by cosine with every vector; the query words themselves are never
        returned. `restrict_vocab` limits the candidates to the first (most
        frequent) rows. Returns up to `topn` (word, cosine) pairs, best first.
        """
        query, rows = self._query(positive, negative)
        return self._nearest(query[None, :], [rows], topn, restrict_vocab)[0]

    def most_similar_batch(self, queries, topn=10, restrict_vocab=None):
        """``most_similar`` for many queries at once: one matrix product per batch.

        Each query is a word, or a list of positive words, or a
        ``(positive, negative)`` pair of lists. Returns one list of
        (word, cosine) pairs per query, the same as asking one at a time, at
        the cost of one pass over the vectors for up to ``SCORE_FLOATS /
        vocabulary size`` queries (all of them, for vocabularies up to ~100k
        words and a few hundred queries) instead of one pass per query.
        """
        built = []
        for q in queries:
            if isinstance(q, tuple) and len(q) == 2 and not isinstance(q[0], str):
                built.append(self._query(q[0], q[1]))
            else:
                built.append(self._query(q, ()))
        if not built:
            return []
        matrix = np.stack([q for q, _ in built])
        return self._nearest(matrix, [rows for _, rows in built], topn, restrict_vocab)

    def _nearest(self, queries, excluded, topn, restrict_vocab):
        """The `topn` best rows for each unit query (rows of `queries`), `excluded` rows left out."""
        if topn < 0:
            raise UsageError(f"topn must be >= 0, got {topn}")
        limit = len(self) if restrict_vocab is None else max(0, min(restrict_vocab, len(self)))
        inverse = self.inverse_norms(limit)
        per_pass = max(1, SCORE_FLOATS // max(1, limit))
        results = []
        for first in range(0, queries.shape[0], per_pass):
            group = queries[first:first + per_pass]
            # scores[row, j]: cosine of candidate row with query j, a block of rows at a time.
            scores = np.empty((limit, group.shape[0]), dtype=np.float32)
            step = rows_per_block(self.dim)
            for start in range(0, limit, step):
                stop = min(limit, start + step)
                block = np.asarray(self.vectors[start:stop])
                np.matmul(block, group.T, out=scores[start:stop])
                scores[start:stop] *= inverse[start:stop, None]
            for j in range(group.shape[0]):
                column = np.ascontiguousarray(scores[:, j])
                results.append(self._top(column, excluded[first + j], topn, limit))
        return results

    def _top(self, scores, query_rows, topn, limit):
        excluded = [row for row in set(query_rows) if row < limit]
        scores[excluded] = -np.inf
        wanted = min(topn, limit - len(excluded))
        if wanted <= 0:
            return []
        if wanted < limit:
            top = np.argpartition(-scores, wanted - 1)[:wanted]
        else:
            top = np.arange(limit)
        # Stable sort on (-score) keeps the more frequent word first on ties.
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.words[i], float(scores[i])) for i in top[:wanted]]

    def analogy(self, a, b, c, topn=10):
        """Answer "`a` is to `b` as `c` is to ?" as most_similar(positive=[b, c], negative=[a])."""
        return self.most_similar(positive=[b, c], negative=[a], topn=topn)

    # -- for other tools

    def save_word2vec_format(self, path, binary=True):
        """Write the C tool's binary or text format; see ``save_word2vec_format``."""
        save_word2vec_format(self, path, binary=binary)

    def save_parquet(self, path):
        """Write a Parquet table (word, count, vector); see ``save_parquet``."""
        save_parquet(self, path)

    def to_gensim(self):
        """These vectors as a gensim ``KeyedVectors`` (gensim must be installed).

        The vectors are copied into memory (gensim's own array, writable);
        words keep their rows, and known counts become gensim's ``count``
        attribute (``kv.get_vecattr(word, "count")``).
        """
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise ImportError("Vectors.to_gensim() needs gensim, an optional dependency: "
                              "pip install gensim") from None
        kv = KeyedVectors(self.dim, count=0, dtype=np.float32)
        kv.index_to_key = list(self.words)
        kv.key_to_index = dict(self.word_to_index)
        kv.vectors = np.array(self.vectors, dtype=np.float32, copy=True)
        if self.counts is not None:
            kv.allocate_vecattrs(attrs=["count"], types=[np.int64])
            kv.expandos["count"][:] = self.counts
        return kv


# ---------------------------------------------------------------------------
# Loading: model directories, word2vec files, our Parquet export


def load(path, mmap=True, limit=None):
    """Load vectors from a model directory, a word2vec file or a Parquet export.

    A directory must be a finished bigw2v model (its matrix memory-mapped
    with `mmap`); a file is recognised from its content: our Parquet export,
    or a word2vec binary or text file, plain or gzip/bzip2/xz/zstd-compressed
    (read into one float32 matrix). `limit` keeps only the first rows (the
    most frequent words, in files from the C tool, gensim or fastText).
    """
    if limit is not None and limit < 0:
        raise UsageError(f"limit must be 0 or more, got {limit}")
    if os.path.isdir(path):
        return load_model_dir(path, mmap=mmap, limit=limit)
    if not os.path.exists(path):
        raise MissingInputError(f"{path} does not exist (a bigw2v model directory or a "
                                "vectors file was expected)")
    if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe: read once, as a word2vec stream
        return load_word2vec_format(path, limit=limit)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    if head == PARQUET_MAGIC:
        return load_parquet(path, limit=limit)
    return load_word2vec_format(path, limit=limit)


def load_model_dir(modeldir, mmap=True, limit=None):
    """Load the input vectors of a finished bigw2v model directory.

    With `mmap` the matrix stays on disk (read-only memmap) and pages in as used.
    """
    import pyarrow.parquet as pq

    # Resolve a published link (e.g. models/latest) once: every file below is then
    # read from one directory, even if the link is switched meanwhile.
    directory = os.path.realpath(modeldir)
    meta_path = os.path.join(directory, MODEL_NAME)
    if not os.path.isdir(directory) or not os.path.isfile(meta_path):
        raise MissingInputError(f"{modeldir} is not a bigw2v model directory (no model.json)")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise InputDataError(f"{meta_path}: cannot read model description: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputDataError(f"{modeldir} is not a bigw2v model directory ({meta_path} has another format)")
    if meta.get("version") != MODEL_VERSION:
        raise InputDataError(
            f"{modeldir}: model format version {meta.get('version')!r} is not supported "
            f"(this bigw2v reads version {MODEL_VERSION})"
        )
    if not meta.get("complete", False):
        raise InputDataError(f"{modeldir}: the model is incomplete: training did not finish")

    vocab_path = os.path.join(directory, "vocab.parquet")
    vectors_path = os.path.join(directory, VECTORS_NAME)
    for path in (vocab_path, vectors_path):
        if not os.path.isfile(path):
            raise MissingInputError(f"{modeldir}: model file {os.path.basename(path)} is missing")
    try:
        table = pq.read_table(vocab_path, columns=["word", "count"])
    except Exception as e:  # pyarrow raises several unrelated types for bad files
        raise InputDataError(f"{vocab_path}: cannot read vocabulary: {e}") from None
    words = table.column("word").to_pylist()
    counts = table.column("count").to_numpy().astype(np.int64, copy=False)
    try:
        vectors = np.load(vectors_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputDataError(f"{vectors_path}: cannot read vectors: {e}") from None

    if vectors.ndim != 2 or vectors.dtype != np.float32:
        raise InputDataError(
            f"{vectors_path}: expected a float32 matrix, got {vectors.dtype} of shape {vectors.shape}"
        )
    expected_shape = (meta.get("vocab_size"), meta.get("dim"))
    if vectors.shape != expected_shape or len(words) != vectors.shape[0]:
        raise InputDataError(
            f"{modeldir}: sizes disagree: model.json says {expected_shape[0]} words of dim "
            f"{expected_shape[1]}, vocab.parquet has {len(words)} words, "
            f"vectors.npy has shape {vectors.shape}"
        )
    if limit is not None:
        words, vectors, counts = words[:limit], vectors[:limit], counts[:limit]
    return Vectors(words, vectors, counts)


def load_word2vec_format(path, binary=None, limit=None):
    """Read vectors written by the C tool, gensim, fastText or `save_word2vec_format`.

    `binary=None` detects the format from the first record; compression
    (gzip, bzip2, xz, zstd) is detected from the first bytes. Rows keep file
    order (most frequent first for the C tool, `</s>` included as a word);
    `limit` reads only the first rows. Counts are unknown (None). Memory: one
    float32 matrix and the words (``w2vfile.py``).
    """
    from .w2vfile import read_word2vec
    words, matrix = read_word2vec(path, binary=binary, limit=limit)
    return Vectors(words, matrix)


def load_parquet(path, limit=None):
    """Read vectors from a Parquet file as ``save_parquet`` writes it.

    Columns `word` (string), `vector` (a fixed-size list of floats) and
    optionally `count` (int64, nulls when unknown).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except Exception as e:  # pyarrow raises several unrelated types for bad files
        raise InputDataError(f"{path}: cannot read Parquet: {e}") from None
    names = schema.names
    if "word" not in names or "vector" not in names or \
            not pa.types.is_fixed_size_list(schema.field("vector").type):
        raise InputDataError(f"{path}: not a vectors table: it needs columns word (string) and "
                             "vector (fixed-size list of float32)")
    dim = schema.field("vector").type.list_size
    rows = pf.metadata.num_rows if limit is None else min(limit, pf.metadata.num_rows)
    columns = ["word", "vector"] + (["count"] if "count" in names else [])
    matrix = np.empty((rows, dim), dtype=np.float32)
    counts = np.zeros(rows, dtype=np.int64)
    known = True
    words = []
    done = 0
    try:
        for batch in pf.iter_batches(batch_size=ROW_BLOCK, columns=columns):
            take = min(batch.num_rows, rows - done)
            if take <= 0:
                break
            batch = batch.slice(0, take)
            words.extend(batch.column(0).to_pylist())
            values = batch.column(1).flatten().to_numpy(zero_copy_only=False)
            matrix[done:done + take] = values.reshape(take, dim)
            if "count" in names:
                column = batch.column(2)
                known = known and column.null_count == 0
                if known:
                    counts[done:done + take] = column.to_numpy(zero_copy_only=False)
            done += take
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputDataError(f"{path}: cannot read Parquet (row {done + 1:,}): {e}") from None
    return Vectors(words, matrix, counts if known and "count" in names else None)


# ---------------------------------------------------------------------------
# Writing for other tools. The C tool's formats: a "V d" header, then one word
# per record, either as text ("word v1 ... vd") or binary (word, space, d
# little-endian float32, newline).


@contextlib.contextmanager
def open_output(path):
    """A binary file to write an export to `path`, chosen by what `path` is.

    ``-``: standard output. A device, a pipe or a socket (after following
    symbolic links): written through, in place. A symbolic link: followed on
    purpose, the file it names is written and the link stays. A regular file,
    or nothing yet: written under a temporary name beside it and renamed into
    place when complete, so a crash never leaves a half-written file.
    """
    if path == "-" or path == sys.stdout:
        sys.stdout.flush()
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    from .atomic import atomic_write
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {path}: it is a directory")
    if st is None or stat.S_ISREG(st.st_mode):
        with atomic_write(target) as out:
            yield out
    else:
        with open(target, "wb") as out:
            yield out


def _write(path, write_body):
    """Run ``write_body(file)`` on ``open_output(path)``, errors as one line each."""
    try:
        with open_output(path) as out:
            write_body(out)
    except BrokenPipeError:
        raise  # the reader went away: the CLI ends quietly
    except OSError as e:  # a full disk or quota 74 (DiskFullError), else 73
        where = "standard output" if path == "-" else str(path)
        raise write_failed(f"cannot write {where}", e) from None


_SEPARATOR_RE = None


def _check_words(words):
    """Refuse words the word2vec formats cannot hold: empty, or with whitespace."""
    global _SEPARATOR_RE
    if _SEPARATOR_RE is None:
        import re
        _SEPARATOR_RE = re.compile("[" + "".join(map(chr, VECTOR_FILE_SEPARATORS)) + "]")
    if "" in words or _SEPARATOR_RE.search("\0".join(words)):
        bad = next(w for w in words if not w or _SEPARATOR_RE.search(w))
        raise InputDataError(
            f"word {bad!r} is empty or contains whitespace; it cannot be written in word2vec format"
        )


def _encode_words(words):
    """UTF-8 word prefixes (word + space); ``_check_words`` has refused what cannot be written."""
    prefixes = [w.encode("utf-8") + b" " for w in words]
    return prefixes, np.frombuffer(b"".join(prefixes), dtype=np.uint8)


def _binary_block(words, rows):
    """The binary records of a block of words as one bytes object, built by numpy.

    Records have variable length (the word), so the block is laid out with a
    mask saying which bytes come from the words and which from the vectors.
    """
    prefixes, word_bytes = _encode_words(words)
    record_tail = 4 * rows.shape[1] + 1
    tails = np.empty((rows.shape[0], record_tail), dtype=np.uint8)
    tails[:, :-1] = np.ascontiguousarray(rows, dtype="<f4").view(np.uint8)
    tails[:, -1] = ord("\n")
    lengths = np.empty(2 * len(prefixes), dtype=np.int64)
    lengths[0::2] = [len(p) for p in prefixes]
    lengths[1::2] = record_tail
    is_word_byte = np.repeat(np.tile([True, False], len(prefixes)), lengths)
    out = np.empty(is_word_byte.shape[0], dtype=np.uint8)
    out[is_word_byte] = word_bytes
    out[~is_word_byte] = tails.ravel()
    return out.tobytes()


def _text_block(words, rows):
    """The text records of a block of words.

    '%.9g' is enough digits for every float32 to parse back to the same float32.
    """
    line_format = "%s " + " ".join(["%.9g"] * rows.shape[1]) + "\n"
    lines = [line_format % (w, *row) for w, row in zip(words, rows.tolist())]
    return "".join(lines).encode("utf-8")


def save_word2vec_format(vectors, path, binary=True):
    """Write `vectors` (a Vectors) in the C tool's binary or text format.

    `path` as ``open_output`` takes it: ``-`` for standard output, a device or
    a pipe written through, a regular file replaced atomically.
    """
    matrix = vectors.vectors
    # About 16 MB of vector data per block, whatever the dimension.
    rows_per_block = max(1, (16 << 20) // max(1, 4 * vectors.dim))
    make_block = _binary_block if binary else _text_block
    _check_words(vectors.words)  # before anything is written: output may be a pipe

    def body(out):
        out.write(f"{len(vectors)} {vectors.dim}\n".encode("ascii"))
        for start in range(0, len(vectors), rows_per_block):
            stop = start + rows_per_block
            out.write(make_block(vectors.words[start:stop], np.asarray(matrix[start:stop])))

    _write(path, body)


def parquet_schema(dim):
    """The Parquet export's schema (docs/formats.md)."""
    import pyarrow as pa
    return pa.schema([
        pa.field("word", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
        pa.field("vector", pa.list_(pa.field("element", pa.float32(), nullable=False), dim),
                 nullable=False),
    ], metadata={b"bigw2v": json.dumps({"format": "bigw2v-vectors", "version": 1,
                                        "dim": dim}).encode()})


def save_parquet(vectors, path, rows_per_group=ROW_BLOCK):
    """Write `vectors` as a Parquet table, one row group per `rows_per_group` rows.

    Columns: ``word`` (string), ``count`` (int64, null when unknown) and
    ``vector`` (fixed_size_list<float32>[dim]); no dictionary encoding (words
    are unique, floats do not repeat). Read by DuckDB (``FLOAT[dim]``),
    Polars (``Array(Float32, dim)``), Spark, pandas. `path` as for
    ``save_word2vec_format``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = parquet_schema(vectors.dim)
    vector_type = schema.field("vector").type

    def body(out):
        with pq.ParquetWriter(out, schema, use_dictionary=False) as writer:
            for start in range(0, len(vectors), rows_per_group):
                stop = min(len(vectors), start + rows_per_group)
                rows = np.ascontiguousarray(vectors.vectors[start:stop], dtype=np.float32)
                values = pa.array(rows.reshape(-1), type=pa.float32())
                column = pa.FixedSizeListArray.from_arrays(values, type=vector_type)
                if vectors.counts is None:
                    counts = pa.nulls(stop - start, pa.int64())
                else:
                    counts = pa.array(vectors.counts[start:stop], type=pa.int64())
                words = pa.array(vectors.words[start:stop], type=pa.string())
                writer.write_table(pa.Table.from_arrays([words, counts, column], schema=schema))

    _write(path, body)
