"""Strict readers for what a socket's client sends: its numbers and its JSON (docs/protocol.md)."""

import json
import re
from itertools import accumulate

# Every number a client sends is a seq or a position in one: a PostgreSQL bigint.
MAX_CLIENT_INT = 2**63 - 1
# Protocol messages are flat objects; a little room for a future field holding one.
MAX_JSON_DEPTH = 8

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")  # str.isdigit() and int() also take "²", "٣", "𝟗"…
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def client_int(value: object, *, minimum: int = 0) -> int | None:
    """A JSON number the client sent, if it is an integer (not a bool or a float) in minimum..2**63-1."""
    if type(value) is not int or not minimum <= value <= MAX_CLIENT_INT:
        return None
    return value


def client_int_from_text(text: str, *, minimum: int = 0) -> int | None:
    """A number the client sent as text (a query parameter), if it is ASCII digits in minimum..2**63-1."""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    return client_int(int(text), minimum=minimum)


def client_json(text: str) -> object:
    """A client message's JSON, nested at most MAX_JSON_DEPTH deep; ValueError for anything else.

    The depth is checked before parsing: json.loads raises RecursionError, not ValueError,
    from about 1,000 levels, which fit in a 4 KiB message.
    """
    brackets = _JSON_BRACKET.findall(_JSON_STRING.sub("", text))
    if max(accumulate(1 if bracket in "[{" else -1 for bracket in brackets), default=0) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text)
    except RecursionError as error:  # unreachable after the depth check, unless the check has a hole
        raise ValueError("nested too deep") from error
