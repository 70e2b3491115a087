"""shop/internals.py: no process starts on other versions of the packages whose internals we rely on."""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from shop.internals import RELIANCES, internals_check, internals_mismatches

ROOT = Path(__file__).resolve().parents[2]


def installed_except(package: str, version: str | None):
    """The real installed-version lookup, except that `package` is at `version` (None: not installed)."""
    real = metadata.version

    def installed(name: str) -> str:
        if name == package:
            if version is None:
                raise metadata.PackageNotFoundError(name)
            return version
        return real(name)

    return installed


def requirement_pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#;]+)", path.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_installed_versions_are_the_pinned_ones():
    assert internals_mismatches() == []
    internals_check()


@pytest.mark.parametrize("package", RELIANCES)
def test_another_version_of_a_relied_on_package_is_refused_naming_the_files_to_revisit(package):
    reliance = RELIANCES[package]
    with pytest.raises(ImproperlyConfigured) as refused:
        internals_check(installed_except(package, "999.0"))
    message = str(refused.value)
    assert f"{package} 999.0 is installed, not {reliance.version}" in message
    assert all(file in message for file in reliance.files)
    assert len(message.splitlines()) == 1  # only the package that differs


def test_a_relied_on_package_that_is_missing_is_refused_too():
    with pytest.raises(ImproperlyConfigured, match="channels-redis not installed.*notifications/layer_watch.py"):
        internals_check(installed_except("channels-redis", None))


def test_every_relied_on_file_exists():
    assert all((ROOT / file).is_file() for reliance in RELIANCES.values() for file in reliance.files)


def test_the_table_pins_what_the_requirements_pin_exactly():
    locked, declared = requirement_pins(ROOT / "requirements.txt"), requirement_pins(ROOT / "requirements.in")
    for package, reliance in RELIANCES.items():
        assert locked[package] == declared[package] == reliance.version, package


def test_the_app_refuses_to_load_on_another_version(monkeypatch):
    """ShopConfig.ready(): daphne's application, Celery and manage.py all set Django up through it."""
    monkeypatch.setattr(metadata, "version", installed_except("redis", "8.0.0"))
    with pytest.raises(ImproperlyConfigured, match="redis 8.0.0 is installed.*notifications/layer_watch.py"):
        apps.get_app_config("shop").ready()


def test_the_web_entry_point_refuses_to_start_on_another_version_and_says_which_file_to_revisit():
    # A real `python -m shop.web`, with daphne's installed version looked up as 4.3.0.
    fake_daphne = (
        "import importlib.metadata as m, runpy; real = m.version; "
        "m.version = lambda name: '4.3.0' if name == 'daphne' else real(name); "
        "runpy.run_module('shop.web', run_name='__main__', alter_sys=True)"
    )
    result = subprocess.run(
        [sys.executable, "-c", fake_daphne, "--port", "0"],
        cwd=ROOT, env={"PATH": "", "DEBUG": "true"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "daphne 4.3.0 is installed, not 4.2.3: revisit shop/web.py" in result.stderr
    assert "Listening" not in result.stdout + result.stderr
