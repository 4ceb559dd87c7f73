"""Where the project lives on disk, named once.

The lab starts gunicorn, Locust and the supervisor with this folder as their
working directory (so ``manage.py``, ``loadtests/`` and ``deploy/`` are found
from a checkout or an editable install alike).
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
