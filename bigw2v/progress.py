"""Progress on stderr: a tqdm bar on a terminal, plain log lines elsewhere, or nothing.

On a terminal the bar's rate and ETA start after the first update: the first
block or batch also pays for loading (or compiling) the Numba kernels, which
would make the first rate a fraction of the real one and the ETA far too long.
Without a terminal (a log file, a pipe, cron) a bar's redraws would be
``\r``-separated noise in the log: a plain line is logged every
``LOG_EVERY`` seconds instead (``BIGW2V_PROGRESS_SECONDS`` in the environment
overrides it), and a last one at the end when any was logged.
"""

import logging
import os
import sys
import time

from tqdm import tqdm
from tqdm.std import EMA

log = logging.getLogger("bigw2v")

LOG_EVERY = 30.0


def progress_bar(total, desc, unit="word", enabled=True):
    """Progress of ``total`` units (None: unknown), SI-scaled; a no-op when not enabled."""
    if enabled and not _is_terminal(sys.stderr):
        every = float(os.environ.get("BIGW2V_PROGRESS_SECONDS", LOG_EVERY))
        return LogLines(total, desc, unit, every)
    return Bar(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1000,
               file=sys.stderr, disable=not enabled, dynamic_ncols=True,
               mininterval=0.5, smoothing=0.1)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Bar(tqdm):
    """A tqdm bar that times from its first update: rate and ETA leave the first one out."""

    _timing = False

    def update(self, n=1):
        if self.disable or self._timing or not n:
            return super().update(n)
        # The first step's units count as done, but not in the rate (module docstring).
        self._timing = True
        self.n += n
        self.initial = self.n
        self.start_t = self.last_print_t = self._time()
        self.last_print_n = self.n
        self.miniters = 0
        self._ema_dn, self._ema_dt, self._ema_miniters = (EMA(self.smoothing) for _ in range(3))
        self.refresh()
        return True


def _scaled(n):
    return tqdm.format_sizeof(n, divisor=1000).strip()


class LogLines:
    """Progress as a log line every ``every`` seconds (the interface of the bar used here)."""

    def __init__(self, total, desc, unit, every, clock=time.monotonic):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.postfix = ""
        self.lines = 0
        self._logged_n = None
        self._clock = clock
        self._start = None  # (time, n) after the first update: the rate starts there
        self._last = clock()

    def update(self, n=1):
        self.n += n
        now = self._clock()
        if self._start is None:
            if n:
                self._start = (now, self.n)
            return
        if now - self._last >= self.every:
            self._log(now)

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = s

    def close(self):
        if self.lines and self.n != self._logged_n:  # the end, when the log shows progress
            self._log(self._clock())

    def line(self, now):
        """The progress as one line of text."""
        units = self.unit if len(self.unit) == 1 else f" {self.unit}s"  # B; words
        done = f"{_scaled(self.n)}{units}"
        if self.total:
            done = f"{100 * self.n / self.total:.0f}% ({done} of {_scaled(self.total)}{units})"
        parts = [done]
        if self._start is not None and now > self._start[0] and self.n > self._start[1]:
            rate = (self.n - self._start[1]) / (now - self._start[0])
            parts.append(f"{_scaled(rate)}{units}/s")
            if self.total and self.n < self.total:
                parts.append(f"about {(self.total - self.n) / rate:.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: {', '.join(parts)}"

    def _log(self, now):
        self._last = now
        self._logged_n = self.n
        self.lines += 1
        log.info("%s", self.line(now))
