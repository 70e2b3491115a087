"""The web process (`python -m shop.web`), writing down what it holds on SIGUSR1.

    BENCH_MEMORY_DUMP=/tmp/dump python -m bench.memory_probe [shop.web's arguments]

Each SIGUSR1 collects garbage, then writes <dump>-<n>.json: every live object the collector tracks, and the
strings, bytes and numbers they refer to, counted and sized (sys.getsizeof) by type, with the ASGI scopes and
their header lists apart. bench/memory.py compares two of them: what an idle socket holds.

(tracemalloc says who allocated each block, but on this shared two-core box it slowed handshakes past daphne's
connect timeout even at 16 frames; the census costs nothing until the signal.)
"""

import gc
import json
import os
import signal
import sys

ATOMS = (str, bytes, int, float)  # not tracked by the collector: found as what tracked objects refer to


def kind(thing) -> str:
    """The type's name, with an ASGI scope and its header list told apart from other dicts and lists."""
    if type(thing) is dict and "type" in thing and "headers" in thing and "path" in thing:
        return "dict: an ASGI scope"
    if type(thing) is list and thing and type(thing[0]) is tuple and len(thing[0]) == 2 and type(thing[0][0]) is bytes:
        return "list: request headers"
    return f"{type(thing).__module__}.{type(thing).__qualname__}"


def census() -> dict:
    """{kind: [count, bytes]} of every live tracked object and the atoms they refer to."""
    gc.collect()
    tracked = gc.get_objects()
    totals: dict[str, list[int]] = {}
    atoms: dict[int, object] = {}
    for thing in tracked:
        entry = totals.setdefault(kind(thing), [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(thing)
        for referent in gc.get_referents(thing):
            if type(referent) in ATOMS:
                atoms[id(referent)] = referent
    for atom in atoms.values():
        entry = totals.setdefault(f"{type(atom).__qualname__} (referred to)", [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(atom)
    del tracked, atoms
    return totals


def dump(signum=None, frame=None) -> None:
    """Write the n-th census (n counts the signals)."""
    dump.count = getattr(dump, "count", 0) + 1
    path = f"{os.environ['BENCH_MEMORY_DUMP']}-{dump.count}.json"
    with open(f"{path}.part", "w") as out:
        json.dump(census(), out)
    os.replace(f"{path}.part", path)  # the reader waits for this name


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, dump)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from shop.web import main

    main(sys.argv[1:])
