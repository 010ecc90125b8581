"""``python -m oxidask.worker ADDRESS [options]``: a worker that runs Python tasks (the same
as ``oxidask worker``)."""

import sys

from oxidask.__main__ import main

if __name__ == "__main__":
    sys.exit(main([sys.argv[0], "worker"] + sys.argv[1:]))
