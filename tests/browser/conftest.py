"""Real-browser fixtures: the e2e stack (daphne + Celery worker) driven by the system Chromium.

The servers come from tests.live.servers (a plugin of the whole suite), shared with
tests/e2e.

Playwright's sync API marks its event loop as running between calls, which makes
Django refuse ORM calls in the test process ("async context"). The loop only ever
talks to the browser driver, never to the database, so while Playwright runs
(`playwright_browser`, package scope) DJANGO_ALLOW_ASYNC_UNSAFE lifts that check;
the package scope also stops Playwright before any other package's (async) tests
run. Changes that publish notifications run in a thread of their own (see data.py).
"""

import glob
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.pages import BrowserSession
from tests.conftest import IN_CI
from tests.e2e.conftest import customer, staff  # noqa: F401 - users who can log in to the servers
from tests.live.servers import FullStack

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1100, "height": 750}
# Every screenshot a test takes lands here (git-ignored); docs/screenshots/ holds a chosen few.
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
# Ceiling for any expect()/wait: generous for a loaded CI machine; healthy runs take milliseconds.
EXPECT_TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The system Chromium (Playwright never downloads one). Missing, it fails under CI and skips elsewhere.

    Session scope, and requested before `stack`, so a machine without Chromium does not start the servers.
    """
    if not os.access(CHROMIUM, os.X_OK):
        message = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="package")
def playwright_browser(chromium: Path) -> Iterator[Browser]:
    """One Chromium for the package (a fresh context per user: see `open_session`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            expect.set_options(timeout=EXPECT_TIMEOUT_MS)
            try:
                yield browser
            finally:
                browser.close()


@pytest.fixture
def open_session(
    request, chromium: Path, stack: FullStack, playwright_browser: Browser
) -> Iterator[Callable[[str], BrowserSession]]:
    """`open_session("alice")`: a fresh browser context (own cookies) against the stack.

    At the end: a screenshot of every open tab if the test failed, and a failure if any
    tab logged an uncaught error or a console error (e.g. a missing asset) while passing.
    """
    sessions: list[BrowserSession] = []
    failed_before = request.session.testsfailed

    def open_(name: str) -> BrowserSession:
        context = playwright_browser.new_context(base_url=stack.web.base_url, viewport=VIEWPORT,
                                                 reduced_motion="reduce")  # fmt: skip
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        session = BrowserSession(name, context)
        sessions.append(session)
        return session

    yield open_

    failed = request.session.testsfailed > failed_before
    errors = []
    for session in sessions:
        for index, page in enumerate(session.pages):
            if failed and not page.is_closed():
                _screenshot(page, f"{request.node.name}--FAILED--{session.name}-{index}")
            errors += [f"{session.name} tab {index}: {error}" for error in session.watch(page).errors]
        session.context.close()
    if errors and not failed:
        pytest.fail("The pages logged errors:\n" + "\n".join(errors), pytrace=False)


def _screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=path)
    return path


@pytest.fixture
def screenshot(request) -> Callable[[Page, str], Path]:
    """`screenshot(page, "label")`: saves test-artifacts/screenshots/<test>--<label>.png."""
    for stale in ARTIFACTS.glob(f"{glob.escape(request.node.name)}--*.png"):
        stale.unlink()  # an earlier run's pictures, perhaps of a failure since fixed
    return lambda page, label: _screenshot(page, f"{request.node.name}--{label}")
