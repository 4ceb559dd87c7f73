"""The supervisor's entry point: ``python -m sessions_lab.supervise RUN_DIR [--foreground]``.

``up`` launches this module and waits for the launcher, never for the
supervisor: it forks once, so the supervisor is nobody's child but init's and
outlives the command that started it. This is also where the supervisor is
given its live dashboard, so that ``sessions_lab.cluster`` does not depend on
``sessions_lab.dashboard``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sessions_lab.cluster.config import RunFolder
from sessions_lab.cluster.supervisor import Supervisor
from sessions_lab.dashboard import Dashboard


def main(argv: list[str] | None = None) -> int:
    """Supervise the run folder named first in ``argv``; ``--foreground`` skips the fork."""
    args = sys.argv[1:] if argv is None else argv
    run = RunFolder(Path(args[0]))
    if "--foreground" not in args and os.fork() != 0:
        # The launcher returns at once; the supervisor is nobody's child but init's.
        os._exit(0)
    return Supervisor(run, dashboard=Dashboard).supervise()


if __name__ == "__main__":
    sys.exit(main())
