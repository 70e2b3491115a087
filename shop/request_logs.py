"""What a request's log lines say about it: its id (X-Request-ID), and its path with no secret in it.

django-structlog's RequestMiddleware binds `request_id` and `user_id` for every line of a request and logs one
`request_finished` line each (shop/settings.py); this module gives it the id and shapes the `request` it logs.
"""

import re
import uuid

import structlog
from asgiref.sync import iscoroutinefunction
from django.db import DatabaseError
from django.dispatch import receiver
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware
from django_structlog.middlewares import RequestMiddleware as StructlogRequestMiddleware
from django_structlog.signals import (
    bind_extra_request_failed_metadata,
    bind_extra_request_finished_metadata,
    bind_extra_request_metadata,
)

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id (nginx's $request_id, a UUID, a trace id) is kept; anything else is replaced, never logged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")
# URL parameters that are credentials (an unsubscribe link's signed token): a log names the route, not the value.
SECRET_URL_PARAMETERS = frozenset({"token"})


def request_id_from(header: str | None) -> str:
    """The id a request is logged under: the `X-Request-ID` it came with if that is a sane token, else a new one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@sync_and_async_middleware
def request_id_middleware(get_response):
    """Gives each request its id (for django-structlog to bind) and names it in the response's X-Request-ID."""

    def prepare(request) -> str:
        request.META["HTTP_X_REQUEST_ID"] = request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        return request_id

    if iscoroutinefunction(get_response):

        async def middleware(request):
            request_id = prepare(request)
            response = await get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            return response

    else:

        def middleware(request):
            request_id = prepare(request)
            response = get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            return response

    return middleware


class RequestMiddleware(StructlogRequestMiddleware):
    """django-structlog's, but a user it could not load is not looked up again for the `request_failed` line.

    Each lookup waits up to DATABASE_POOL_TIMEOUT while the database is down, so a second one would double how long
    the request takes to fail (tests/faults/test_postgres_restart.py).
    """

    @staticmethod
    def bind_user_id(request) -> None:
        if getattr(request, "_log_user_unavailable", False):
            return
        try:
            StructlogRequestMiddleware.bind_user_id(request)
        except DatabaseError:
            request._log_user_unavailable = True
            raise


def request_described(request) -> str:
    """`METHOD /path` as logged: no query string, and each secret URL parameter replaced by its name."""
    path = request.path
    try:
        match = getattr(request, "resolver_match", None) or resolve(request.path_info)
    except Resolver404:
        return f"{request.method} {path}"
    for name in SECRET_URL_PARAMETERS & match.kwargs.keys():
        path = path.replace(str(match.kwargs[name]), f"<{name}>")
    return f"{request.method} {path}"


@receiver(bind_extra_request_metadata)
def request_started_describe(sender, request, log_kwargs, **kwargs) -> None:
    """The request's lines carry the client's address (REMOTE_ADDR, set by shop/proxy.py) and a path safe to log."""
    structlog.contextvars.bind_contextvars(ip=request.META.get("REMOTE_ADDR"))
    log_kwargs["request"] = request_described(request)


@receiver(bind_extra_request_finished_metadata)
@receiver(bind_extra_request_failed_metadata)
def request_ended_describe(sender, request, log_kwargs, **kwargs) -> None:
    """`request_finished` and `request_failed` name the request as `request_started` did."""
    log_kwargs["request"] = request_described(request)
