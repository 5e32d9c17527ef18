"""Compressed inputs: which format a file's first bytes show, and a stream that undoes it.

Used by the corpus reader and by the word2vec file reader. Formats are told
by content, never by name, so ``corpus.txt`` that is really gzip is read
right. Imports nothing heavy (the vector reader avoids loading Numba).
"""

from __future__ import annotations

from .errors import InputDataError, UsageError

COMPRESSIONS = ("gz", "bz2", "xz", "zst")
FORMAT_NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zst": "zstd"}
# Enough leading bytes to recognise every supported format.
SNIFF_BYTES = 10
# bzip2: "BZh", a block-size digit, then the magic of the first block
# (pi) or of the end of stream (sqrt(pi)); checking all of it keeps a text
# that happens to start with "BZh" from being taken for bzip2.
_BZ2_BLOCK_MAGICS = (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")


def sniff(head: bytes) -> str | None:
    """The compression format whose magic bytes start ``head``, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zst"
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in _BZ2_BLOCK_MAGICS:
        return "bz2"
    return None


def decompressed(raw, compression: str | None, path: str):
    """A binary stream of ``raw``'s content with ``compression`` undone (``raw`` itself for None).

    ``path`` names the input in errors.
    """
    if compression is None:
        return raw
    if compression == "gz":
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bz2":
        import bz2
        return bz2.BZ2File(raw, mode="rb")
    if compression == "xz":
        import lzma
        return lzma.LZMAFile(raw, mode="rb")
    if compression == "zst":
        import pyarrow as pa
        if not pa.Codec.is_available("zstd"):
            raise InputDataError(
                f"{path} is zstd-compressed but this pyarrow has no zstd codec: "
                f"decompress it first (zstd -d) or install a pyarrow built with zstd")
        try:
            return pa.CompressedInputStream(raw, "zstd")
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise InputDataError(f"{path}: corrupt or truncated zstd data ({exc})") from None
    raise UsageError(f"unknown compression {compression!r} (known: {', '.join(COMPRESSIONS)})")
