"""``python -m dodoco.replay ...`` on every rank under torchrun (``dodoco replay`` launches it)."""

import sys

from dodoco.replay.launch import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
