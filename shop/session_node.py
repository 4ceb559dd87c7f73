"""Which memcached node holds a session: the ``X-Session-Node`` header and the inspector.

Where the store is memcached nodes, every instance lists every node in the
same order (``MEMCACHED_SERVERS``) and the cache's client (pymemcache's
``HashClient``) hashes each full cache key to one of them. The node named is
the key's *home*: where the client's hasher puts it with every node in it.
While a node is dead the client leaves it out, so its keys land on another
node; once it is back (empty) they hash home again. Either way a loss is the
home node's doing. Computed from the key alone: no session load, no network.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches

from sessions_lab.modes import StoreServer, get_mode

logger = logging.getLogger(__name__)

# One hasher with every node per node list: the client's own, copied before any
# node it finds dead is left out of it.
_HOMES: dict[tuple[str, ...], Any] = {}


def _home_hasher(client: Any) -> tuple[tuple[str, ...], Any]:
    """The client's node names in ``MEMCACHED_SERVERS`` order, and its hasher with all of them."""
    nodes = tuple(client.clients)  # built in LOCATION order; a node re-added keeps its place
    home = _HOMES.get(nodes)
    if home is None:
        home = copy.deepcopy(client.hasher)
        for node in nodes:
            home.add_node(node)
        _HOMES[nodes] = home
    return nodes, home


def node_of(session: SessionBase) -> int | None:
    """The 1-based place in ``MEMCACHED_SERVERS`` of the node ``session``'s key hashes to;
    None outside a memcached mode, without a session key, or if it cannot be told."""
    if get_mode(settings.SESSION_MODE).store_server is not StoreServer.MEMCACHED:
        return None
    key = session.session_key
    prefix = getattr(session, "cache_key_prefix", None)
    if not key or prefix is None:
        return None
    try:
        cache = caches[settings.SESSION_CACHE_ALIAS]
        nodes, home = _home_hasher(cache._cache)  # the backend's own HashClient
        return nodes.index(home.get_node(cache.make_key(prefix + key))) + 1
    except Exception:  # a header is information: never a reason to fail the answer
        logger.exception("could not tell the session's memcached node")
        return None
