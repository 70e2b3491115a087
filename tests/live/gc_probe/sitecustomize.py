"""Loaded by a web process started with this folder first on PYTHONPATH and GC_PROBE_DIR set (test_web_memory.py).

When `<dir>/start` appears it collects, then keeps every object the collector would free (DEBUG_SAVEALL) until
`<dir>/stop` appears; then it writes how many there were of each type to `<dir>/garbage.json`. What reference
counting frees never gets there: this counts only what would wait for a collection.
"""

import gc
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path


def _probe(folder: Path) -> None:
    while not (folder / "start").exists():
        time.sleep(0.05)  # the probe's own wait, in its own thread: nothing of the test waits on it
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    (folder / "started").touch()
    while not (folder / "stop").exists():
        time.sleep(0.05)
    gc.collect()
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    (folder / "garbage.json.tmp").write_text(json.dumps(kinds))
    (folder / "garbage.json.tmp").rename(folder / "garbage.json")


if os.environ.get("GC_PROBE_DIR"):
    threading.Thread(target=_probe, args=(Path(os.environ["GC_PROBE_DIR"]),), daemon=True).start()
