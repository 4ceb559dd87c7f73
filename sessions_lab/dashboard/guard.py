"""Who may use the dashboard: loopback only, and actions only with its token.

The dashboard kills processes, so the checks are layered:

- the server binds 127.0.0.1 only, and each request's peer address must be
  loopback all the same (a later change of the bind address must not open
  the buttons to the network);
- the ``Host`` header must name a loopback host, on every request: a page on
  another site whose domain is made to resolve to 127.0.0.1 (DNS rebinding)
  still sends its own name as ``Host``, so it can neither read the page (and
  the token in it) nor act;
- a kill/start is a POST carrying the dashboard's token in a header. The
  token is random per supervisor and only in the page itself, which another
  origin cannot read; and a custom header is something a plain cross-site
  form cannot send.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

TOKEN_HEADER = "X-Dashboard-Token"  # noqa: S105 - a header name, not a secret
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback_peer(address: str) -> bool:
    """Whether a client's address (as the socket reports it) is on this machine's loopback."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def host_of(authority: str) -> str:
    """The host part of a ``Host`` header or an origin's authority ("[::1]:9080" → "::1")."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else ""
    host, _, port = authority.rpartition(":") if authority.count(":") == 1 else (authority, "", "")
    if port and not port.isdigit():
        return ""
    return host


def is_loopback_host(authority: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (a name or an address)."""
    host = host_of(authority)
    return host in LOOPBACK_NAMES or (bool(host) and is_loopback_peer(host))


def token_matches(expected: str, given: str | None) -> bool:
    """Compare in constant time, so the token cannot be guessed byte by byte from timings."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def refusal(peer: str, headers: Mapping[str, str], token: str | None = None) -> str | None:
    """Why a request is refused, or None to serve it.

    ``token`` is the dashboard's CSRF token when the request is an action
    (kill/start); reading the page or its data needs no token.
    """
    if not is_loopback_peer(peer):
        return f"the dashboard answers loopback clients only, not {peer}"
    host = headers.get("Host")
    if not host or not is_loopback_host(host):
        return "the Host header must be a loopback name (127.0.0.1 or localhost)"
    if token is None:
        return None
    # Browsers send Origin on every POST; the page's own is loopback. A
    # sandboxed frame sends "null", which is refused with any other.
    origin = headers.get("Origin")
    if origin is not None:
        authority = origin.split("://", 1)[-1]
        if not is_loopback_host(authority):
            return "actions are accepted only from the dashboard's own page"
    if not token_matches(token, headers.get(TOKEN_HEADER)):
        return f"missing or wrong {TOKEN_HEADER}: reload the dashboard page"
    return None
