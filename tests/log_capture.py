"""Everything logged meanwhile, rendered by the shop's own JSON formatter (shop/logs.py) as it is emitted."""

import io
import json
import logging
from contextlib import contextmanager

from shop.logs import log_formatter


class CapturedLog:
    def __init__(self, stream: io.StringIO):
        self.stream = stream

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        """Each line parsed; a line that is not one JSON object fails the test."""
        parsed = [json.loads(line) for line in self.text().splitlines()]
        assert all(isinstance(line, dict) for line in parsed)
        return parsed

    def events(self, event: str) -> list[dict]:
        return [line for line in self.lines() if line["event"] == event]


@contextmanager
def json_log_captured(level: int = logging.DEBUG):
    """On the root logger at `level`: formatted when emitted, so with the context bound at that moment."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield CapturedLog(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
