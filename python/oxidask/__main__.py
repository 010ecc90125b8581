"""The ``oxidask`` command: ``oxidask scheduler``, ``oxidask worker ADDRESS`` (a worker that
runs Python tasks), ``oxidask demo``. Also ``python -m oxidask ...``."""

import os
import signal
import sys


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    extra = os.environ.get("OXIDASK_WORKER_SYS_PATH")
    if extra:
        # A LocalCluster's workers see the modules their client sees.
        for p in reversed(extra.split(os.pathsep)):
            if p and p not in sys.path:
                sys.path.insert(0, p)
    # Ctrl-C and SIGTERM stop the process at once, as they stop the Rust binary.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Processes this one starts (a gateway's clusters) run as `python -m oxidask` too, so
    # their workers run Python tasks.
    os.environ.setdefault("OXIDASK_SELF_COMMAND", f"{sys.executable} -m oxidask")
    from oxidask import _oxidask

    return _oxidask.cli_main(["oxidask"] + argv[1:])


if __name__ == "__main__":
    sys.exit(main())
