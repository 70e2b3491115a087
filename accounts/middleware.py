"""The request being served, for code that runs inside it without it at hand (a User's post_save)."""

import contextvars

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.utils.decorators import sync_and_async_middleware

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("request", default=None)


def current_request() -> HttpRequest | None:
    """The request this code runs in, or None (a shell, a task, a test outside the client)."""
    return _request.get()


@sync_and_async_middleware
def current_request_middleware(get_response):
    """Makes the request known to `current_request()` until its response is made."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            token = _request.set(request)
            try:
                return await get_response(request)
            finally:
                _request.reset(token)

    else:

        def middleware(request):
            token = _request.set(request)
            try:
                return get_response(request)
            finally:
                _request.reset(token)

    return middleware
