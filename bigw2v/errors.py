"""Errors a user can cause, each with the exit code the CLI returns for it.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``;
anything that is not a ``Bigw2vError`` is a bug and is reported as such.
Codes follow sysexits(3) where one fits, so cron wrappers can tell
"fix your input" from "try again later".
"""


class Bigw2vError(Exception):
    """Base class: a failure the user can act on. Exit code 1."""

    exit_code = 1


class UsageError(Bigw2vError):
    """A bad option value or combination of options (EX_USAGE)."""

    exit_code = 64


class InputDataError(Bigw2vError):
    """The input exists but cannot be used: empty corpus, no words, garbage (EX_DATAERR)."""

    exit_code = 65


class MissingInputError(Bigw2vError):
    """An input file, directory, workdir or model does not exist (EX_NOINPUT)."""

    exit_code = 66


class OutputError(Bigw2vError):
    """An output cannot be created or written (EX_CANTCREAT)."""

    exit_code = 73


class LockedError(Bigw2vError):
    """Another process holds the directory; try again later (EX_TEMPFAIL)."""

    exit_code = 75


class ResourceError(Bigw2vError):
    """Not enough memory or disk for the run, found before it starts (EX_IOERR).

    The same code as a disk that fills up mid-run: a cron wrapper treats the
    predicted failure and the real one alike.
    """

    exit_code = 74
