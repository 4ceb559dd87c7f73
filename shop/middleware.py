"""Headers that let a client (and the workshop) see which instance and mode answered."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class InstanceHeadersMiddleware:
    """Adds ``X-Served-By`` and ``X-Session-Mode`` to every response, without touching the session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Served-By"] = settings.INSTANCE_NAME
        response["X-Session-Mode"] = settings.SESSION_MODE
        return response
