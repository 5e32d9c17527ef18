"""Inputs whose rows are records: Parquet, Arrow IPC (file or stream), JSON Lines.

Each row's text is one line, so a row is a sentence boundary as a line of a
text file is. Rows are read as Arrow string arrays, a row group or record
batch at a time (never a whole file), and their bytes go to the word table as
one block of LF-terminated lines: no Python object per row.

The text is the column (Parquet, Arrow) or field (JSON Lines) the user
names (``--text-column``, ``--text-field``); by default the one named
``text``, else the only string one; otherwise an error lists the string
columns. A null value is an empty line.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
from numba import njit

from .errors import InputDataError, UsageError

PARQUET, ARROW_FILE, ARROW_STREAM, JSON_LINES, TEXT = (
    "parquet", "arrow-file", "arrow-stream", "jsonl", "text")
RECORD_KINDS = (PARQUET, ARROW_FILE, ARROW_STREAM, JSON_LINES)
DEFAULT_TEXT_NAME = "text"

_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_ARROW_SUFFIXES = (".arrow", ".feather", ".ipc", ".arrows")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
# Rows per record batch when a Parquet file's metadata gives no size per row.
_DEFAULT_BATCH_ROWS = 65536


def kind_of(name: str, head: bytes = b"") -> str:
    """The input kind from the first bytes (magic numbers) or else the file name's suffix."""
    if head.startswith(b"PAR1"):
        return PARQUET
    if head.startswith(b"ARROW1"):
        return ARROW_FILE
    if head.startswith(b"\xff\xff\xff\xff"):
        return ARROW_STREAM
    stem = name.lower().split("?", 1)[0]
    for suffix in _COMPRESSION_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
            break
    if stem.endswith(".parquet") or stem.endswith(".parq"):
        return PARQUET
    if stem.endswith(_ARROW_SUFFIXES):
        return ARROW_STREAM if stem.endswith(".arrows") else ARROW_FILE
    if stem.endswith(_JSON_SUFFIXES):
        return JSON_LINES
    return TEXT


def option_name(kind: str) -> str:
    """The command-line option that picks the text of an input of ``kind``."""
    return "--text-field" if kind == JSON_LINES else "--text-column"


# ---------------------------------------------------------------- the text column


def _is_text(arrow_type) -> bool:
    import pyarrow as pa
    return (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            or getattr(pa.types, "is_string_view", lambda t: False)(arrow_type))


def text_column(schema, wanted: str | None, where: str, kind: str) -> str:
    """The name of the column holding the text: ``wanted``, or the default rule."""
    what = "field" if kind == JSON_LINES else "column"
    strings = [f.name for f in schema if _is_text(f.type)]
    listed = ", ".join(strings) if strings else "none"
    if wanted is not None:
        if wanted not in schema.names:
            raise UsageError(f"{where} has no {what} {wanted!r} (its string {what}s: {listed}; "
                             f"all {what}s: {', '.join(schema.names)})")
        if not _is_text(schema.field(wanted).type):
            raise InputDataError(f"{where}: {what} {wanted!r} holds {schema.field(wanted).type}, "
                                 f"not strings (string {what}s: {listed})")
        return wanted
    if DEFAULT_TEXT_NAME in strings:
        return DEFAULT_TEXT_NAME
    if len(strings) == 1:
        return strings[0]
    raise UsageError(f"{where}: no string {what} named {DEFAULT_TEXT_NAME!r} and "
                     f"{len(strings)} string {what}s ({listed}): name one with "
                     f"{option_name(kind)}")


# ---------------------------------------------------------------- rows as lines


@njit(cache=True, nogil=True)
def _join_lines(data, offsets, out):
    """Copy row i (``data[offsets[i]:offsets[i+1]]``) then a LF, for every row, into ``out``."""
    pos = 0
    for i in range(offsets.shape[0] - 1):
        length = offsets[i + 1] - offsets[i]
        out[pos:pos + length] = data[offsets[i]:offsets[i + 1]]
        pos += length
        out[pos] = 10
        pos += 1
    return pos


def rows_as_lines(strings) -> np.ndarray:
    """An Arrow string array as one block of text: each value then a LF (uint8 array).

    The values' bytes are copied once, by a compiled loop, straight from the
    array's buffers.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        strings = strings.cast(pa.large_string())
    if strings.null_count:
        strings = pc.fill_null(strings, "")
    n = len(strings)
    _, offsets_buffer, data_buffer = strings.buffers()
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[strings.offset:strings.offset + n + 1]
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.empty(0, np.uint8))
    out = np.empty(int(offsets[-1] - offsets[0]) + n, dtype=np.uint8)
    _join_lines(data, offsets.astype(np.int64), out)
    return out


def _sliced(strings, block_bytes: int) -> Iterator:
    """``strings`` in row slices of about ``block_bytes`` of text (a large batch cut up)."""
    n = len(strings)
    pieces = max(1, -(-int(strings.nbytes) // max(1, block_bytes)))
    step = max(1, -(-n // pieces))
    for start in range(0, n, step):
        yield strings.slice(start, step)


# ---------------------------------------------------------------- the formats


def _corrupt(where: str, kind: str, exc: Exception) -> InputDataError:
    names = {PARQUET: "Parquet", ARROW_FILE: "Arrow", ARROW_STREAM: "Arrow stream",
             JSON_LINES: "JSON Lines"}
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputDataError(f"{where}: not a readable {names[kind]} file ({reason})")


def record_blocks(kind: str, source, where: str, size: int, wanted: str | None,
                  block_bytes: int) -> Iterator[tuple[np.ndarray, int]]:
    """(block of lines, bytes of the input done so far) over one record input.

    ``source``: a random-access pyarrow file (Parquet, Arrow file) or a stream
    (Arrow stream, JSON Lines: already decompressed); ``where`` names the
    input in errors; ``size`` is its size in bytes (for progress).
    """
    import pyarrow as pa
    readers = {PARQUET: _parquet, ARROW_FILE: _arrow_file, ARROW_STREAM: _arrow_stream,
               JSON_LINES: _json_lines}
    try:
        for strings, done in readers[kind](source, where, size, wanted, block_bytes):
            for piece in _sliced(strings, block_bytes):
                yield rows_as_lines(piece), done
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise _corrupt(where, kind, exc) from None


def _parquet(source, where, size, wanted, block_bytes):
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(source)
    name = text_column(pf.schema_arrow, wanted, where, PARQUET)
    meta = pf.metadata
    rows = meta.num_rows
    leaves = [i for i in range(meta.num_columns) if meta.schema.column(i).path == name]
    text = sum(meta.row_group(g).column(leaves[0]).total_uncompressed_size
               for g in range(meta.num_row_groups)) if leaves else 0
    batch_rows = (max(1, block_bytes * rows // text) if text and rows
                  else _DEFAULT_BATCH_ROWS)
    done = 0
    for batch in pf.iter_batches(batch_size=min(batch_rows, 1 << 22), columns=[name]):
        done += batch.num_rows
        yield batch.column(0), size * done // max(rows, 1)


def _arrow_file(source, where, size, wanted, block_bytes):
    import pyarrow as pa
    reader = pa.ipc.open_file(source)
    name = text_column(reader.schema, wanted, where, ARROW_FILE)
    batches = reader.num_record_batches
    for i in range(batches):
        yield reader.get_batch(i).column(name), size * (i + 1) // batches


def _arrow_stream(source, where, size, wanted, block_bytes):
    import pyarrow as pa
    reader = pa.ipc.open_stream(source)
    name = text_column(reader.schema, wanted, where, ARROW_STREAM)
    for batch in reader:
        yield batch.column(name), _position(source)


def _position(source) -> int:
    """Bytes of the input read so far by ``source`` (a counted stream or a pyarrow file)."""
    done = getattr(source, "raw_bytes_read", None)
    return done if done is not None else source.tell()


def _json_lines(source, where, size, wanted, block_bytes):
    """JSON Lines through pyarrow's streaming reader, the text field read as strings only.

    ``source`` is a factory of fresh decompressed streams: the default rule
    looks at the first block's fields, then the file is read from the start
    with only the text field (others ignored, whatever their types). A named
    field that no row holds is an error listing the fields there are; an
    input holding only whitespace has no rows.
    """
    import pyarrow as pa
    import pyarrow.json as pj
    read_options = pj.ReadOptions(block_size=max(1 << 16, min(block_bytes, 1 << 30)))
    named = wanted is not None
    if not named:
        wanted = _default_field(source, read_options, where)
        if wanted is None:
            return
    parse = pj.ParseOptions(explicit_schema=pa.schema([(wanted, pa.string())]),
                            unexpected_field_behavior="ignore")
    stream = source()
    seen = False  # a value of the field (absent fields read as nulls)
    try:
        try:
            reader = pj.open_json(pa.PythonFile(stream, mode="r"), read_options=read_options,
                                  parse_options=parse)
        except pa.ArrowInvalid:
            if _blank(source):
                return
            raise
        if wanted not in reader.schema.names:
            raise UsageError(f"{where} has no field {wanted!r}")
        for batch in reader:
            column = batch.column(wanted)
            seen = seen or column.null_count < len(column)
            yield column, stream.raw_bytes_read
    finally:
        stream.close()
    if named and not seen:  # only nulls: is the field there at all? (the first rows' fields)
        try:
            schema = _json_schema(source, read_options)
        except pa.ArrowInvalid:
            return
        if schema is not None and wanted not in schema.names:
            text_column(schema, wanted, where, JSON_LINES)  # raises, listing the fields


def _default_field(source, read_options, where):
    """The default rule's field, or None for an input holding only whitespace.

    ``text`` is tried first, read alone from the first block: when it is
    there, the other fields' types do not matter (pyarrow cannot infer a
    field whose type changes between rows).
    """
    import pyarrow as pa
    import pyarrow.json as pj
    alone = pj.ParseOptions(explicit_schema=pa.schema([(DEFAULT_TEXT_NAME, pa.string())]),
                            unexpected_field_behavior="ignore")
    stream = source()
    try:
        first = pj.open_json(pa.PythonFile(stream, mode="r"), read_options=read_options,
                             parse_options=alone).read_next_batch().column(0)
        if first.null_count < len(first):
            return DEFAULT_TEXT_NAME
    except (pa.ArrowInvalid, StopIteration):
        pass
    finally:
        stream.close()
    schema = _json_schema(source, read_options)
    return None if schema is None else text_column(schema, None, where, JSON_LINES)


def _json_schema(source, read_options):
    """The fields of a JSON Lines input's first block, or None if it holds only whitespace."""
    import pyarrow as pa
    import pyarrow.json as pj
    stream = source()
    try:
        return pj.open_json(pa.PythonFile(stream, mode="r"), read_options=read_options).schema
    except pa.ArrowInvalid:
        if _blank(source):
            return None
        raise
    finally:
        stream.close()


def _blank(source) -> bool:
    """Whether a JSON Lines input holds only whitespace (pyarrow cannot open an empty one)."""
    stream = source()
    try:
        while True:
            chunk = stream.read(1 << 16)
            if not chunk:
                return True
            if chunk.strip():
                return False
    finally:
        stream.close()


def local_source(kind: str, path: str):
    """A random-access source for a local Parquet or Arrow file: memory-mapped, no copy."""
    import pyarrow as pa
    if kind in (PARQUET, ARROW_FILE, ARROW_STREAM):
        return pa.memory_map(path, "r")
    raise ValueError(kind)


def is_datasets_folder(path: str) -> bool:
    """Whether ``path`` is a Hugging Face ``datasets`` folder (``save_to_disk``)."""
    return (os.path.isfile(os.path.join(path, "state.json"))
            or os.path.isfile(os.path.join(path, "dataset_dict.json")))


def datasets_files(path: str) -> list[str]:
    """The Arrow files of a ``save_to_disk`` folder, in the dataset's order (all splits)."""
    import json
    try:
        if os.path.isfile(os.path.join(path, "dataset_dict.json")):
            with open(os.path.join(path, "dataset_dict.json"), encoding="utf-8") as f:
                splits = json.load(f)["splits"]
            return [p for split in splits for p in datasets_files(os.path.join(path, split))]
        with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
            files = [d["filename"] for d in json.load(f)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputDataError(f"{path}: not a readable datasets folder ({exc})") from None
    return [os.path.join(path, name) for name in files]
