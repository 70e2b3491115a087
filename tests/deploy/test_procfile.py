"""The Procfile's web line, started as honcho starts it: the shop, where the environment says, as the settings say."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import requires_postgres
from tests.deploy.test_compose import make_run_recipe, procfile_line, procfile_web
from tests.live.servers import ManagedProcess, server_env, wait_until_serving

pytestmark = [pytest.mark.e2e, requires_postgres()]


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on 127.0.0.1:`port`: `ss` shows it as Send-Q."""
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout.split()
    assert listing[0] == "LISTEN" and listing[3] == f"127.0.0.1:{port}", listing
    return int(listing[2])


def test_the_procfiles_web_line_serves_the_shop_on_the_environments_address_with_a_deep_backlog(
    django_db_setup, e2e_workdir, e2e_static_root
):
    """A storm's connections wait to be accepted, not dropped (twisted's own backlog is 50; docs/performance.md)."""
    command = procfile_web().removeprefix("web:").strip()
    env = server_env(
        REDIS_URL="",  # embedded mode: the web process alone, as `make run` without Redis
        STATIC_ROOT=str(e2e_static_root),
        WEB_HOST="127.0.0.1",
        WEB_PORT="0",  # the OS picks: no race for a "free" port
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `python`: this virtualenv's
    )
    # honcho runs each line through a shell; exec, so the one process to stop is the web process.
    process = ManagedProcess("procfile-web", ["sh", "-c", f"exec {command}"], env, e2e_workdir / "procfile-web.log")
    process.start()
    try:
        port = int(process.wait_for_log(r"Listening on TCP address 127\.0\.0\.1:(\d+)").group(1))
        wait_until_serving(process, f"http://127.0.0.1:{port}")
        backlog = listen_backlog(port)
    finally:
        process.stop()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())  # the kernel's cap on any backlog
    assert backlog == min(2048, somaxconn)


def test_make_run_without_redis_runs_the_offline_fallback_loop_beside_the_web_process(django_db_setup, e2e_workdir):
    """Embedded mode has no beat: Procfile.embedded's second line is the documented command, looping."""
    assert make_run_recipe(REDIS_URL="")[-1].endswith("honcho --procfile Procfile.embedded start")
    command = procfile_line("deliver", "Procfile.embedded").removeprefix("deliver:").strip()
    assert command == "python manage.py notifications_deliver --loop"
    env = server_env(
        REDIS_URL="",
        NOTIFICATION_DELIVERY_INTERVAL="0.2",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    process = ManagedProcess("procfile-deliver", ["sh", "-c", f"exec {command}"], env, e2e_workdir / "deliver.log")
    process.start()
    try:
        process.wait_for_log(r"Delivering offline notifications every 0\.2s")
        assert process.is_running()  # it loops: a run found nothing due and it went on
    finally:
        process.stop()
    assert "Traceback" not in process.log_text()
