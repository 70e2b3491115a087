"""The shop's logs: structlog over the standard library, as readable console lines or JSON lines (LOG_FORMAT).

Every record goes through one root handler whose formatter is structlog's ProcessorFormatter, so the shop's
`logging.getLogger(__name__)` calls, django-structlog's request and task events and third parties (django,
daphne, celery) come out alike, each with what is bound in its context: `request_id` and `user_id` for a
request or socket (django-structlog, shop/request_logs.py, notifications/socket_logs.py), `order` inside
`order_transition`, `task_id` and `task` in a Celery task. What each key means: docs/logging.md.
"""

import logging

import structlog
from django.dispatch import receiver
from django_structlog.celery.signals import bind_extra_task_metadata

LOG_FORMATS = ("console", "json")

# Before the renderer, for structlog's own events and foreign (standard library) records alike.
_SHARED_PROCESSORS = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)

# Loggers that say, at INFO, that nothing happened: each beat tick ("Scheduler: Sending due task") and each task a
# worker receives and finishes. From WARNING only, unless LOG_LEVEL is DEBUG; task failures and retries are WARNING
# or above there, and django-structlog's task_failed / task_retrying lines carry the task's id and name.
_QUIET_AT_INFO = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


def log_formatter(log_format: str) -> logging.Formatter:
    """A formatter that renders any record as one console line or one JSON object (tracebacks in `exception`)."""
    if log_format == "json":
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        # The plain traceback: the fancier formatters print each frame's local variables (a password, a session).
        renderer = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=list(_SHARED_PROCESSORS),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def logging_config(*, log_format: str, level: str) -> dict:
    """The LOGGING setting: everything to stderr through `log_formatter(log_format)` at `level`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"shop": {"()": "shop.logs.log_formatter", "log_format": log_format}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "shop"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Never the SQL: its parameters hold session keys and password hashes, whatever LOG_LEVEL says.
            "django.db.backends": {"level": "INFO"},
            # django-structlog's request_finished / request_failed say it all, with the request's id and its path as
            # logged (no token in it); Django's "Not Found: /path" repeats only the raw path, after the context ends.
            "django.request": {"level": "CRITICAL"},
            **{name: {"level": "DEBUG" if level == "DEBUG" else "WARNING"} for name in _QUIET_AT_INFO},
        },
    }


def structlog_configure(*, log_format: str) -> None:
    """structlog's loggers hand their events, context merged, to the standard library's handlers."""
    # In JSON, Python's warnings (celery's "running as root") are log lines too, not plain text on stderr.
    logging.captureWarnings(log_format == "json")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@receiver(bind_extra_task_metadata)
def task_name_bind(sender, task=None, **kwargs) -> None:
    """A task's lines carry its name beside the `task_id` django-structlog binds."""
    structlog.contextvars.bind_contextvars(task=task.name)
