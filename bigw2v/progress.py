"""Progress bars on stderr (tqdm), off when not wanted or not a terminal-friendly run."""

import sys

from tqdm import tqdm


def progress_bar(total, desc, unit="word", enabled=True):
    """A tqdm bar on stderr with SI-scaled counts; a no-op bar when disabled."""
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, unit_divisor=1000,
                file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)
