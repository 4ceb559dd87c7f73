"""Follow a file of JSON lines as it grows, reading each byte once.

The dashboard polls every second while nginx, Locust and the runner append
to their files; rereading a whole access log per poll would cost more the
longer the lab runs. ``JsonLinesTail`` remembers its offset and keeps a line
that is still being written for the next read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# One poll reads at most this much. A dashboard left unwatched under load
# must not stall its next poll on megabytes of history: it skips to the
# recent end instead (``skipped`` says so), since live counters are about now.
MAX_READ = 8 * 1024 * 1024


class JsonLinesTail:
    """The complete JSON lines appended to ``path`` since the last ``read``."""

    def __init__(self, path: Path, from_end: bool = False) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.skipped = False  # whether a read ever skipped over unread lines
        self._inode: int | None = None
        if from_end:
            # Lines written before (an earlier `up` in the same run folder
            # appends to the same access log) are not this run's.
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return
            self.offset, self._inode = stat.st_size, stat.st_ino

    def read(self) -> list[dict[str, Any]]:
        """New complete lines, parsed; malformed ones are dropped, not fatal."""
        try:
            with self.path.open("rb") as file:
                stat = os.fstat(file.fileno())
                if stat.st_ino != self._inode or stat.st_size < self.offset:
                    # Replaced or truncated: a new file, read from its start.
                    self._inode, self.offset, self.partial = stat.st_ino, 0, b""
                if stat.st_size - self.offset > MAX_READ:
                    self.offset, self.partial, self.skipped = stat.st_size - MAX_READ, b"", True
                    file.seek(self.offset)
                    file.readline()  # the rest of a line cut in two by the skip
                    self.offset = file.tell()
                file.seek(self.offset)
                data = file.read(MAX_READ)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        records = []
        for line in complete:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records
