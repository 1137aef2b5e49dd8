import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def cli_child():
    """The CLI in a child process (a hang fails the test instead of hanging it):
    ``cli_child(*argv, env=None, timeout=120)`` -> CompletedProcess (text stdout and stderr)."""

    def run(*argv, env=None, timeout=120):
        cmd = [sys.executable, "-m", "dodoco.cli", *map(str, argv)]
        env = dict(os.environ, **(env or {}))
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)

    return run
