"""Headers on every answer: which instance and mode answered, and who may keep a copy.

``X-Served-By`` and ``X-Session-Mode`` let a client (and the workshop) see
where a request went. The cache headers keep personal answers out of shared
caches and off a shared computer's disk: nearly every answer of the shop
depends on who asks (a cart, a name, the session inspector at the foot of
every page), and identity arrives in a cookie (a session id, a signed
session, the pages' JWT cookies) or in ``Authorization`` (the API's bearer
token), so a cache that keeps an answer must key it on both.
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control, patch_vary_headers

# Answers that are the same for everyone; everything else is personal.
# (Static files never reach this middleware: WhiteNoise answers them first.)
PUBLIC_PATHS = ("/healthz", "/api/products/", "/api/schema/", "/api/docs/")
PERSONAL_CACHE_CONTROL = "private, no-store"
IDENTITY_CARRIERS = ("Cookie", "Authorization")


def is_personal(path: str) -> bool:
    """Whether the answer to ``path`` may depend on who is asking."""
    return not path.startswith(PUBLIC_PATHS)


class InstanceHeadersMiddleware:
    """Adds ``X-Served-By``, ``X-Session-Mode`` and, on personal answers, ``Cache-Control:
    private, no-store`` and ``Vary: Cookie, Authorization`` — without touching the session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Served-By"] = settings.INSTANCE_NAME
        response["X-Session-Mode"] = settings.SESSION_MODE
        if is_personal(request.path):
            # Set outright when the view said nothing (the hot path: the cart
            # read); merged with what it said otherwise (never_cache's max-age=0).
            if response.has_header("Cache-Control"):
                patch_cache_control(response, private=True, no_store=True)
            else:
                response["Cache-Control"] = PERSONAL_CACHE_CONTROL
            patch_vary_headers(response, IDENTITY_CARRIERS)
        return response
