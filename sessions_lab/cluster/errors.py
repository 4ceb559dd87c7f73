"""The two ways a lab request ends badly, shared by every driver and the CLI.

``LabError`` is the caller's to fix (an unknown mode, a port in use): the CLI
prints it as one line and exits 2. ``LabFailure`` is the lab's: it tried and
something did not come up; exit 1, with the log that says why. They live
apart from ``Cluster`` so that configuration checks, the compose driver and
the experiment runner raise and catch them without importing the native
cluster.
"""

from __future__ import annotations


class LabError(Exception):
    """A request that cannot be carried out as asked; the message says what to do."""


class LabFailure(Exception):
    """The lab tried and something failed (a process did not come up)."""
