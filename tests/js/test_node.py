"""The live client's browser-free parts, tested with Node's own test runner (`node --test tests/js/`)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None and not IN_CI, reason="needs Node.js 18+ (node on PATH)")
def test_the_node_tests_of_the_live_client_pass():
    assert NODE, "node is not on PATH"
    result = subprocess.run(
        [NODE, "--test", *sorted(str(path) for path in HERE.glob("*.test.mjs"))],
        cwd=HERE.parents[1], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout, result.stdout
