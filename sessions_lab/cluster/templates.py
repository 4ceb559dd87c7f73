"""Render the server configuration templates (nginx, Redis, PostgreSQL).

The same files are rendered by the native cluster and, later, for
docker-compose, so they hold every address and port as a placeholder. Only
``${name}`` is a placeholder: nginx's own ``$variables`` pass through as they
are, so a template reads like the configuration it produces.
"""

from __future__ import annotations

import string
from pathlib import Path

TEMPLATE_DIR = Path(__file__).with_name("templates")


class ConfigTemplate(string.Template):
    """A ``string.Template`` that only substitutes the braced form ``${name}``."""

    pattern = r"""
    \$(?:
        (?P<escaped>(?!))
      | (?P<named>(?!))
      | \{(?P<braced>[_a-z][_a-z0-9]*)\}
      | (?P<invalid>(?!))
    )
    """


def render(name: str, **values: object) -> str:
    """The template ``name`` (relative to the templates folder) with ``values`` filled in.

    A placeholder without a value raises ``KeyError``: a half-rendered server
    configuration must never reach a server.
    """
    text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    return ConfigTemplate(text).substitute({key: str(value) for key, value in values.items()})
