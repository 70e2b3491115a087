"""The push channel (Web Push): this stub only names the call notifications/offline.py makes; push work fills it."""


def push_deliver(*, delivery) -> None:
    """Push `delivery`'s notification to each of its customer's browsers; raise if it should be retried.

    offline.py has claimed the row (its lease runs) and marks it sent when this returns, or schedules a retry
    (then `failed`) when it raises.
    """
    raise NotImplementedError("Web Push is not built yet")
