"""The ``cookie`` mode's session engine: Django's signed cookies, each cookie checked once per process.

The whole session travels in the cookie, signed; Django checks the
signature (HMAC), decompresses and decodes it on every request. A client
sends the same cookie until the session changes, so a cookie that passed
the check is remembered with what it decoded to (shop/verified.py) until it
is as old as the session's age, Django's own expiry for these cookies; so
is a cookie this process signed.
Every load still returns a fresh dictionary. Saving is Django's, the value
signed once per content.

What is remembered is the session's plain JSON, even with sessions
encrypted (``shop.sessions.encryption``): this process holds the keys
anyway, and a hit then costs no decryption. A cookie read under an older
key is not remembered: that request rewrites it under the newest one, and
a copy of the old cookie sent again is checked in full and rewritten again.
Django's async methods of this backend call the sync ones (``aload`` is
``load``), so both forms read, save and delete alike with no change here.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import signed_cookies
from django.core import signing

from shop.sessions import encryption
from shop.sessions.encryption import PLAIN
from shop.verified import VerifiedValues

SALT = "django.contrib.sessions.backends.signed_cookies"  # Django's, so its cookies stay valid

# Cookie value -> the session's plain JSON (bytes: each load decodes a fresh copy).
VERIFIED_COOKIES: VerifiedValues[bytes] = VerifiedValues()


class SessionStore(signed_cookies.SessionStore):
    # The content last signed, and its cookie value (see _get_session_key).
    _signed: tuple[bytes, str] | None = None

    def _get_session_key(self) -> str:
        """Django's signed cookie value, signed once per content.

        A cart write asks for the value twice: to check the cookie's size
        before it saves (``shop.cart.signed_cookie_size``), and to save. Signing
        (compress, HMAC, and with keys set, encrypt) costs several times what
        the session's plain JSON does, so the value is signed again only when
        the content changed in between.
        """
        content = PLAIN.dumps(self._session)
        signed = self._signed
        if signed is None or signed[0] != content:
            signed = (content, super()._get_session_key())
            self._signed = signed
            # Signed here, under the newest key: as good as checked, for as long
            # as Django would accept it. Its next request, if it comes back to
            # this instance, needs no check.
            VERIFIED_COOKIES.add(signed[1], content, expires_at=self._expiry(signed[1]))
        return signed[1]

    def load(self) -> dict[str, Any]:
        cookie = self.session_key
        remembered = VERIFIED_COOKIES.get(cookie) if cookie else None
        if remembered is not None:
            return PLAIN.loads(remembered)
        max_age = self.get_session_cookie_age()
        older_key_reads = encryption.older_key_reads()
        try:
            data = signing.loads(cookie, serializer=self.serializer, max_age=max_age, salt=SALT)
        # As Django's: a bad signature, bad data, too old or unreadable start afresh.
        except Exception:
            self.create()
            return {}
        if encryption.older_key_reads() == older_key_reads:
            VERIFIED_COOKIES.add(cookie, PLAIN.dumps(data), expires_at=self._expiry(cookie))
        return data

    def _expiry(self, cookie: str) -> float:
        """When Django stops accepting this cookie: its signing time plus the session's age."""
        # The value is "payload:timestamp:signature", the timestamp in base 62.
        signed_at = signing.b62_decode(cookie.rsplit(":", 2)[1])
        return signed_at + self.get_session_cookie_age()
