"""Run code in real threads, released at the same instant, each with its own database connection."""

import threading
from collections.abc import Callable, Iterable

from django.db import connection


def run_concurrently(target: Callable, arguments: Iterable[tuple], *, timeout: float = 30) -> list:
    """Call target(*args) for every args at once; return each call's result or the exception it raised."""
    arguments = list(arguments)
    start = threading.Barrier(len(arguments))
    outcomes: list = [None] * len(arguments)

    def run(index, args):
        try:
            start.wait(timeout=timeout)
            outcomes[index] = target(*args)
        except Exception as error:  # the caller inspects every outcome
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, args)) for index, args in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a concurrent call hung (deadlock?)"
    return outcomes
