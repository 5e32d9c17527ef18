"""Inputs named by URI (``s3://``, ``gs://``, ``hdfs://``, ``file://``), through ``pyarrow.fs``.

pyarrow, already a dependency, speaks to object stores and HDFS with the
usual configuration: credentials, region and endpoint come from the standard
environment variables and config files of each store (for S3, e.g.
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``~/.aws/config``), or from the URI's query string as pyarrow reads it
(``s3://bucket/key?endpoint_override=host:9000&scheme=http``).

A URI names one object, a "directory" (every object under it, in name
order), or a glob (``s3://bucket/news/2024-*.parquet``). Each object is an
input like a local file: its size and modification time let a later count
reuse its runs. Errors name the URI: a missing object or a glob matching
nothing (66), refused credentials (66), an unreachable store (74).
"""

from __future__ import annotations

import fnmatch
import functools
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import InputIOError, MissingInputError, UsageError

SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "file")
_GLOB_CHARS = "*?["
# Words in a store's error message that mean "you may not", not "cannot reach".
_REFUSED = ("ACCESS_DENIED", "AccessDenied", "403", "InvalidAccessKeyId",
            "SignatureDoesNotMatch", "Forbidden", "PermissionDenied", "Unauthorized")


class RemoteObject(NamedTuple):
    uri: str
    size: int
    mtime_ns: int


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``scheme://...``) rather than a local path."""
    head, sep, _ = path.partition("://")
    return bool(sep) and head.isalnum()


def local_path(uri: str) -> str | None:
    """The local path of a ``file://`` URI, else None."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    return parts.path


def _check_scheme(uri: str) -> None:
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"{uri}: unsupported URI scheme {scheme}:// "
                         f"(supported: {', '.join(s + '://' for s in SCHEMES)})")


@functools.lru_cache(maxsize=64)
def _filesystem(root: str):
    """The pyarrow filesystem for a URI's scheme, host and query (made once: clients are costly)."""
    import pyarrow as pa
    from pyarrow import fs as pafs
    try:
        return pafs.FileSystem.from_uri(root)[0]
    except pa.ArrowInvalid as exc:
        raise UsageError(f"{root}: not a URI pyarrow can open ({exc})") from None
    except OSError as exc:
        raise translate(root, exc) from None


def _split(uri: str):
    """(filesystem, path inside it, the URI rebuilt for a path) for ``uri``."""
    _check_scheme(uri)
    parts = urlsplit(uri)
    query = f"?{parts.query}" if parts.query else ""
    filesystem = _filesystem(f"{parts.scheme}://{parts.netloc}/{query}")
    if parts.scheme.lower() in ("s3", "gs", "gcs"):
        path = parts.netloc + parts.path  # the bucket is the first part of the path
        rebuild = lambda p: f"{parts.scheme}://{p}{query}"  # noqa: E731
    else:
        path = parts.path
        rebuild = lambda p: f"{parts.scheme}://{parts.netloc}{p}{query}"  # noqa: E731
    return filesystem, path.rstrip("/") or "/", rebuild


def translate(uri: str, exc: OSError):
    """The bigw2v error for an OSError from a store: missing (66), refused (66), unreachable (74)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return MissingInputError(f"no such object: {uri}")
    if isinstance(exc, PermissionError) or any(word in str(exc) for word in _REFUSED):
        return MissingInputError(f"{uri}: access refused by the store ({reason})")
    return InputIOError(f"{uri}: cannot reach the store ({reason})")


def expand(uri: str) -> list[RemoteObject]:
    """The objects a URI names, in name order: one object, all under a prefix, or a glob's matches."""
    from pyarrow import fs as pafs
    filesystem, path, rebuild = _split(uri)
    try:
        if any(c in path for c in _GLOB_CHARS):
            base = path[:min(path.find(c) for c in _GLOB_CHARS if c in path)].rsplit("/", 1)[0]
            infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True,
                                                               allow_not_found=True))
            found = [i for i in infos if i.type == pafs.FileType.File
                     and fnmatch.fnmatchcase(i.path, path)]
            if not found:
                raise MissingInputError(f"no object matches {uri}")
        else:
            info = filesystem.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise MissingInputError(f"no such object: {uri}")
            if info.type == pafs.FileType.File:
                found = [info]
            else:
                infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
                found = [i for i in infos if i.type == pafs.FileType.File
                         and not any(part.startswith(".")
                                     for part in i.path[len(path):].split("/"))]
                if not found:
                    raise MissingInputError(f"{uri} holds no objects")
    except OSError as exc:
        raise translate(uri, exc) from None
    found.sort(key=lambda i: i.path)
    return [RemoteObject(rebuild(i.path), int(i.size or 0), int(i.mtime_ns or 0)) for i in found]


def stat(uri: str) -> RemoteObject:
    """Size and modification time of one object now."""
    from pyarrow import fs as pafs
    filesystem, path, _ = _split(uri)
    try:
        info = filesystem.get_file_info(path)
    except OSError as exc:
        raise translate(uri, exc) from None
    if info.type != pafs.FileType.File:
        raise MissingInputError(f"no such object: {uri}")
    return RemoteObject(uri, int(info.size or 0), int(info.mtime_ns or 0))


def open_stream(uri: str):
    """A sequential binary stream over one object (a pyarrow NativeFile)."""
    filesystem, path, _ = _split(uri)
    try:
        return filesystem.open_input_stream(path, compression=None)
    except OSError as exc:
        raise translate(uri, exc) from None


def open_file(uri: str):
    """A random-access binary file over one object (Parquet and Arrow files need one)."""
    filesystem, path, _ = _split(uri)
    try:
        return filesystem.open_input_file(path)
    except OSError as exc:
        raise translate(uri, exc) from None
