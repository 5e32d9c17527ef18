"""Trained word vectors: loading, similarity queries, and the word2vec file formats.

A trained model directory holds ``vectors.npy`` (the input vectors, one row
per vocabulary word, most frequent first) next to ``vocab.parquet``. ``load``
memory-maps the matrix so that opening a 3M-word model costs only the vocabulary.

``save_word2vec_format`` / ``load_word2vec_format`` speak the original C
tool's formats, so our vectors can be used by ``distance`` or gensim, and the
reference tools' vectors can be scored by our evaluator.
"""

import json
import mmap
import os

import numpy as np

from .errors import InputDataError, MissingInputError, OutputError, UsageError
from .modeldir import MODEL_FORMAT, MODEL_NAME, MODEL_VERSION, VECTORS_NAME


# Rows per block when a whole-matrix operation is done piecewise: bounds the
# float64 temporaries to tens of megabytes whatever the vocabulary size.
ROW_BLOCK = 65536

# Bytes the C tool and gensim treat as word separators; a word containing one
# cannot be written in the word2vec formats and read back as the same word.
VECTOR_FILE_SEPARATORS = (9, 10, 11, 12, 13, 32)


class UnknownWordError(InputDataError, KeyError):
    """A queried word is not in the vocabulary.

    Also a KeyError so that dict-like code (``try: v[w] except KeyError``) works.
    """

    def __init__(self, word):
        super().__init__(f"word {word!r} is not in the vocabulary")
        self.word = word

    # KeyError.__str__ would repr() the message and add quotes around it.
    def __str__(self):
        return self.args[0]


def unit_rows(matrix):
    """Return a float32 copy of `matrix` with every row scaled to unit L2 norm.

    All-zero rows stay zero (instead of becoming NaN), so they have cosine 0
    with everything and are never anyone's nearest neighbour by accident.
    """
    matrix = np.asarray(matrix)
    out = np.empty(matrix.shape, dtype=np.float32)
    for start in range(0, matrix.shape[0], ROW_BLOCK):
        block = np.asarray(matrix[start:start + ROW_BLOCK], dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        norms[norms == 0.0] = 1.0
        out[start:start + ROW_BLOCK] = block / norms[:, None]
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
        self.word_to_index = {}
        # Reversed so that for a repeated word the earliest row wins.
        for i in range(len(words) - 1, -1, -1):
            self.word_to_index[words[i]] = i
        self._unit_vectors = None

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
        """Row number of `word`; UnknownWordError if it is not in the vocabulary."""
        try:
            return self.word_to_index[word]
        except KeyError:
            raise UnknownWordError(word) from None

    def __getitem__(self, word):
        return self.vectors[self.index(word)]

    def unit_vectors(self, limit=None):
        """L2-normalised float32 copy of the vectors (zero rows stay zero).

        The full matrix is computed once and cached. With `limit`, only the
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

    def similarity(self, a, b):
        """Cosine similarity of words `a` and `b` (0.0 if either vector is zero)."""
        return float(np.dot(self.unit_vector(a), self.unit_vector(b)))

    def most_similar(self, positive, negative=(), topn=10, restrict_vocab=None):
        """Words nearest to the sum of `positive` minus `negative` words (3CosAdd).

        As in gensim and the C tool: the unit vectors of the positive words are
        added, those of the negative words subtracted, and the result is compared
        by cosine with every unit vector; the query words themselves are never
        returned. `restrict_vocab` limits the candidates to the first (most
        frequent) rows. Returns up to `topn` (word, cosine) pairs, best first.
        """
        if isinstance(positive, str):
            positive = [positive]
        if isinstance(negative, str):
            negative = [negative]
        positive, negative = list(positive), list(negative)
        if not positive and not negative:
            raise UsageError("most_similar needs at least one positive or negative word")
        if topn < 0:
            raise UsageError(f"topn must be >= 0, got {topn}")
        query_rows = [self.index(w) for w in positive + negative]
        query = np.zeros(self.dim, dtype=np.float64)
        for word in positive:
            query += self.unit_vector(word)
        for word in negative:
            query -= self.unit_vector(word)
        norm = np.linalg.norm(query)
        if norm > 0:
            query /= norm
        limit = len(self) if restrict_vocab is None else max(0, min(restrict_vocab, len(self)))
        candidates = self.unit_vectors(limit)
        scores = candidates @ query.astype(np.float32)
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


# ---------------------------------------------------------------------------
# Model directories written by the trainer


def load(modeldir, mmap=True):
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
    return Vectors(words, vectors, counts)


# ---------------------------------------------------------------------------
# The original C tool's formats: a "V d" header, then one word per record,
# either as text ("word v1 ... vd") or binary (word, space, d little-endian
# float32, newline).


def _encode_words(words):
    """UTF-8 word prefixes (word + space), refusing words the formats cannot hold."""
    prefixes = [w.encode("utf-8") + b" " for w in words]
    joined = np.frombuffer(b"".join(prefixes), dtype=np.uint8)
    separators = np.count_nonzero(np.isin(joined, VECTOR_FILE_SEPARATORS))
    if separators != len(prefixes) or any(len(p) == 1 for p in prefixes):
        bad = next(w for w in words if not w or any(ord(ch) in VECTOR_FILE_SEPARATORS for ch in w))
        raise InputDataError(
            f"word {bad!r} is empty or contains whitespace; it cannot be written in word2vec format"
        )
    return prefixes, joined


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
    _encode_words(words)
    line_format = "%s " + " ".join(["%.9g"] * rows.shape[1]) + "\n"
    lines = [line_format % (w, *row) for w, row in zip(words, rows.tolist())]
    return "".join(lines).encode("utf-8")


def save_word2vec_format(vectors, path, binary=True):
    """Write `vectors` (a Vectors) in the C tool's binary or text format.

    The file is written next to `path` under a temporary name and renamed into
    place, so a crash never leaves a truncated file under the final name.
    """
    tmp_path = f"{path}.tmp{os.getpid()}"
    matrix = vectors.vectors
    # About 16 MB of vector data per block, whatever the dimension.
    rows_per_block = max(1, (16 << 20) // max(1, 4 * vectors.dim))
    make_block = _binary_block if binary else _text_block
    try:
        with open(tmp_path, "wb") as out:
            out.write(f"{len(vectors)} {vectors.dim}\n".encode("ascii"))
            for start in range(0, len(vectors), rows_per_block):
                stop = start + rows_per_block
                out.write(make_block(vectors.words[start:stop], np.asarray(matrix[start:stop])))
        os.replace(tmp_path, path)
    except OSError as e:
        _remove_quietly(tmp_path)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove_quietly(tmp_path)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _parse_header(line, path):
    parts = line.split()
    try:
        count, dim = (int(p) for p in parts)
    except ValueError:
        count = dim = -1
    if len(parts) != 2 or count < 0 or dim <= 0:
        raise InputDataError(
            f"{path}: not a word2vec file: the first line should be 'WORDS DIM', "
            f"got {line[:60]!r}"
        )
    return count, dim


def _looks_like_text(first_record, dim):
    """True if the first record after the header reads as a text-format line."""
    parts = first_record.split()
    if len(parts) != dim + 1:
        return False
    try:
        [float(p) for p in parts[1:]]
    except ValueError:
        return False
    return True


def load_word2vec_format(path, binary=None):
    """Read vectors written by the C tool, gensim, or `save_word2vec_format`.

    `binary=None` detects the format from the first record. Rows keep file
    order (most frequent first for the C tool, `</s>` included as a word);
    counts are unknown and set to None.
    """
    if not os.path.isfile(path):
        raise MissingInputError(f"vectors file {path} does not exist")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputDataError(f"{path}: file is empty, not a word2vec file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                header_end = data.find(b"\n")
                if header_end < 0:
                    raise InputDataError(f"{path}: not a word2vec file: no header line")
                count, dim = _parse_header(data[:header_end].decode("ascii", "replace"), path)
                start = header_end + 1
                if binary is None:
                    line_end = data.find(b"\n", start)
                    first = data[start:line_end if line_end >= 0 else size]
                    binary = count > 0 and not _looks_like_text(first, dim)
                if binary:
                    words, matrix = _read_binary(data, start, count, dim, path)
                else:
                    words, matrix = _read_text(data, start, count, dim, path)
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    return Vectors(words, matrix)


def _read_binary(data, pos, count, dim, path):
    words = []
    matrix = np.empty((count, dim), dtype=np.float32)
    record_bytes = 4 * dim
    size = len(data)
    for i in range(count):
        # The C tool ends records with '\n'; gensim does not. Either way a
        # record's word starts after any newlines.
        while pos < size and data[pos] in (10, 13):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + record_bytes > size:
            raise InputDataError(
                f"{path}: truncated: the header promises {count} words, the file ends in word {i + 1}"
            )
        words.append(data[pos:space].decode("utf-8", "replace"))
        matrix[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + record_bytes
    return words, matrix


def _read_text(data, pos, count, dim, path):
    words = []
    matrix = np.empty((count, dim), dtype=np.float32)
    size = len(data)
    line_number = 1
    i = 0
    while i < count:
        if pos >= size:
            raise InputDataError(
                f"{path}: truncated: the header promises {count} words, the file has {i}"
            )
        end = data.find(b"\n", pos)
        if end < 0:
            end = size
        line = data[pos:end]
        pos = end + 1
        line_number += 1
        parts = line.split()
        if not parts:
            continue
        if len(parts) != dim + 1:
            raise InputDataError(
                f"{path}:{line_number}: expected a word and {dim} numbers, got {len(parts)} fields"
            )
        try:
            matrix[i] = np.array(parts[1:], dtype=np.float64)
        except ValueError:
            raise InputDataError(f"{path}:{line_number}: a vector value is not a number") from None
        words.append(parts[0].decode("utf-8", "replace"))
        i += 1
    return words, matrix
