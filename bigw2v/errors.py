"""Errors a user can cause, each with the exit code the CLI returns for it.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``;
anything that is not a ``Bigw2vError`` is a bug and is reported as such.
Codes follow sysexits(3) where one fits, so cron wrappers can tell
"fix your input" from "try again later".
"""

import errno

# The classes below differ only in their exit code and docstring, on purpose:
# one class per kind of failure, so code raises what went wrong and the CLI maps it.


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


class DiskFullError(Bigw2vError):
    """The disk (or the quota) filled up while writing (EX_IOERR), as the README says."""

    exit_code = 74


class InputIOError(Bigw2vError):
    """An input could not be read for a reason outside its data: the network, the store (EX_IOERR)."""

    exit_code = 74


class Interrupted(Bigw2vError):
    """SIGINT or SIGTERM during training: stopped after a checkpoint."""

    exit_code = 130


# Exit codes that are not an error class's.
EXIT_COMMAND_LINE = 2     # argparse's code for a bad command line
EXIT_INTERNAL = Bigw2vError.exit_code
EXIT_IO = ResourceError.exit_code   # any OSError the command did not expect: disk full, ...

# Every exit code of the ``bigw2v`` command with its meaning: the one table the
# CLI's --help epilog is built from (the README repeats it for readers).
EXIT_CODES = (
    (0, "done"),
    (EXIT_COMMAND_LINE, "bad command line (a missing, unknown or extra argument)"),
    (UsageError.exit_code, "bad option value (out of range, not a number, not one of the "
                           "choices, or contradicting another)"),
    (InputDataError.exit_code, "unusable input"),
    (MissingInputError.exit_code, "missing input"),
    (OutputError.exit_code, "cannot write output"),
    (EXIT_IO, "I/O error (e.g. disk full; or too little memory or disk, found before "
              "starting)"),
    (LockedError.exit_code, "locked by another run (try later)"),
    (Interrupted.exit_code, "interrupted (training checkpoints first: --resume continues)"),
    (EXIT_INTERNAL, "internal error (a bug: please report it)"),
)


def write_failed(what, e):
    """The error for OSError ``e`` while writing ``what`` ("cannot write X: ...").

    A full disk or quota is an I/O error (74: free space, then --resume), any
    other failure a path that cannot be written (73).
    """
    if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{what}: no space left on device")
    return OutputError(f"{what}: {e.strerror or e}")


def exit_codes_text():
    """The exit-code table as one paragraph, for --help."""
    return "exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES)
