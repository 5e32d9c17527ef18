"""kill -9 at a chosen point: a child process that sends itself SIGKILL from a hook.

A real SIGKILL skips everything an exception would run (``finally`` blocks,
``except`` handlers, context managers, atexit), so what it leaves on disk is
what a crash leaves. The hook makes the point exact: the child wraps one
function of a bigw2v module and kills itself before or after its N-th call.
"""

import json
import signal
import subprocess
import sys

CHILD = r"""
import importlib, json, os, signal, sys

spec = json.loads(sys.argv[1])
module = importlib.import_module(spec["module"])
real = getattr(module, spec["function"])
calls = 0


def hooked(*args, **kwargs):
    global calls
    if len(args[0]) == 0:  # the trainer's warm-up of the kernel on no chunks: not a call
        return real(*args, **kwargs)
    calls += 1
    if calls == spec["call"] and spec["when"] == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if calls == spec["call"] and spec["when"] == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result


setattr(module, spec["function"], hooked)
if "train" in spec:  # the library call
    from bigw2v.trainer import train
    train(*spec["train"][0], **spec["train"][1])
else:  # the command line, as `python -m bigw2v` runs it
    from bigw2v.cli import main
    sys.exit(main(spec["argv"]))
"""


def killed_at(function, call, when="after", argv=None, train=None, timeout=300):
    """Run bigw2v in a child killed by SIGKILL ``when`` ("before"/"after") the ``call``-th
    call of ``function`` ("module.name", e.g. "bigw2v.kernels.train_chunks").

    ``argv`` runs the command line; ``train`` = (args, kwargs) calls the trainer.
    Asserts the kill happened (the child did not finish first) and returns its stderr.
    """
    module, name = function.rsplit(".", 1)
    spec = {"module": module, "function": name, "call": call, "when": when}
    if train is not None:
        spec["train"] = [list(map(str, train[0])), train[1]]
    else:
        spec["argv"] = list(map(str, argv))
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
    return r.stderr
