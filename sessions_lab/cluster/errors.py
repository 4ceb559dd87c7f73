"""The two ways a lab request ends badly, shared by every driver and the CLI; and how a
driver runs its command-line tool so that a failure is one of them.

``LabError`` is the caller's to fix (an unknown mode, a port in use): the CLI
prints it as one line and exits 2. ``LabFailure`` is the lab's: it tried and
something did not come up; exit 1, with the log that says why. They live
apart from ``Cluster`` so that configuration checks, the compose driver and
the experiment runner raise and catch them without importing the native
cluster.
"""

from __future__ import annotations

import subprocess


class LabError(Exception):
    """A request that cannot be carried out as asked; the message says what to do."""


class LabFailure(Exception):
    """The lab tried and something failed (a process did not come up)."""


def run_tool(argv: list[str], shown: str, missing: str, timeout: float) -> str:
    """Run a command-line tool the drivers speak through (docker compose, kubectl).

    Its stdout; else ``LabError``: ``missing`` when the program is not there,
    else ``shown`` (the command as the user would type it) with its stderr.
    """
    try:
        done = subprocess.run(  # noqa: S603 - argv built by the driver
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise LabError(missing) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shown}` took over {timeout:.0f} s") from None
    if done.returncode != 0:
        message = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        raise LabError(f"{shown}: {message}")
    return done.stdout
