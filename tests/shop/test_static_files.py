"""What collectstatic ships: the live client's modules import each other by their hashed names."""

import json
import re
from pathlib import PurePosixPath

IMPORT = re.compile(r"""(?:import|from)\s*["'](\.{1,2}/[^"']+)["']""")


def test_every_collected_live_client_module_imports_the_others_by_their_hashed_names(e2e_static_root):
    manifest = json.loads((e2e_static_root / "staticfiles.json").read_text())["paths"]
    modules = {name: hashed for name, hashed in manifest.items() if name.startswith("js/") and name.endswith(".js")}
    assert {"js/live.js", "js/connection.js", "js/pages/admin.js"} <= modules.keys()

    imported = set()
    for name, hashed in modules.items():
        source = (e2e_static_root / hashed).read_text()
        for specifier in IMPORT.findall(source):
            target = str(PurePosixPath(hashed).parent / specifier)
            target = str(PurePosixPath(*_resolved(PurePosixPath(target).parts)))
            assert target in modules.values(), f"{name} imports {specifier}, which is no hashed file"
            imported.add(target)
    assert modules["js/connection.js"] in imported


def _resolved(parts):
    """`js/pages/../dom.abc.js` as `js/dom.abc.js`."""
    out = []
    for part in parts:
        if part == "..":
            out.pop()
        elif part != ".":
            out.append(part)
    return out
