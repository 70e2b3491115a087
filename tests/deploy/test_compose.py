"""docker-compose.yml is valid and runs the shop the way operators do (no Docker engine needed)."""

import ast
import ipaddress
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from honcho.manager import KILL_WAIT

from bench.stack import WORKER_NICENESS
from shop.drain import CANCEL_WAIT
from shop.request_logs import _SANE_REQUEST_ID
from tests.live.nginx import shipped_config_rendered

ROOT = Path(__file__).resolve().parents[2]
WEB_SERVICES = ("web-1", "web-2")
APP_SERVICES = ("migrate", *WEB_SERVICES, "worker", "beat")
NGINX_CONFIG = ROOT / "deploy" / "nginx.conf"


def load_compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def nginx_config() -> str:
    return NGINX_CONFIG.read_text()


def upstream_servers() -> list[tuple[str, str, str]]:
    """(host, port, parameters) of each `server` line in deploy/nginx.conf's upstream block."""
    block = re.search(r"upstream shop_web \{(.*?)\}", nginx_config(), re.S)[1]
    return re.findall(r"^\s*server ([\w.-]+):(\d+)((?: [^;]+)?);", block, re.M)


def procfile_line(name: str, procfile: str = "Procfile") -> str:
    return next(line for line in (ROOT / procfile).read_text().splitlines() if line.startswith(f"{name}:"))


def procfile_web(procfile: str = "Procfile") -> str:
    return procfile_line("web", procfile)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of each line of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def image_environment() -> dict[str, str]:
    pairs = [pair for name, arguments in dockerfile_instructions() if name == "ENV" for pair in shlex.split(arguments)]
    return dict(pair.split("=", 1) for pair in pairs)


def image_command() -> list[str]:
    return json.loads(next(arguments for name, arguments in dockerfile_instructions() if name == "CMD"))


def make_run_recipe(**variables: str) -> list[str]:
    """The commands `make run` would run (make -n: nothing runs), with `variables` set on make's command line."""
    # --no-print-directory: under another make (.ci/run), make would add "Entering/Leaving directory" lines.
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", *(f"{name}={value}" for name, value in variables.items())],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return dry_run.stdout.splitlines()


WEB_COMMAND = ["python", "-m", "shop.web"]  # daphne's arguments are the settings' (shop/web.py), nowhere else


def test_compose_names_the_required_services():
    services = load_compose()["services"]
    assert {"postgres", "redis", *WEB_SERVICES, "nginx", "worker", "beat"} <= set(services)


def test_the_web_processes_are_one_service_twice_so_each_is_restarted_like_the_other():
    services = load_compose()["services"]
    alike = [{key: value for key, value in services[name].items() if key != "networks"} for name in WEB_SERVICES]
    assert alike == [alike[0]] * len(WEB_SERVICES)
    assert "web" not in services  # nginx names each process; a lone `web` would be proxied to by nobody


def test_nginx_and_each_web_process_keep_their_address_when_recreated_and_no_other_container_takes_it():
    """nginx resolves web-1 and web-2 when it starts: a web container recreated elsewhere would never be reached."""
    compose = load_compose()
    pool = compose["networks"]["default"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])
    fixed = [compose["services"][name]["networks"]["default"]["ipv4_address"] for name in ("nginx", *WEB_SERVICES)]
    addresses = [ipaddress.ip_address(address) for address in fixed]
    assert len(set(addresses)) == len(addresses)
    assert all(address in subnet and address not in dynamic for address in addresses)
    assert dynamic.subnet_of(subnet)


def test_app_services_share_one_image_and_differ_only_by_command_and_cpu_weight():
    services = load_compose()["services"]
    own = ("command", "ports", "depends_on", "restart", "cpu_shares", "stop_grace_period", "healthcheck", "networks")
    shared = {key: value for key, value in services["web-1"].items() if key not in own}
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == "." and service["image"] == "shop:latest"
        assert {k: v for k, v in service.items() if k in shared} == shared
    commands = {name: services[name]["command"] for name in APP_SERVICES}
    assert all(commands[name] == WEB_COMMAND for name in WEB_SERVICES)
    assert commands["worker"][:4] == ["celery", "-A", "celery_app", "worker"]
    assert commands["beat"][:4] == ["celery", "-A", "celery_app", "beat"]
    assert len({tuple(command) for command in commands.values()}) == len(APP_SERVICES) - len(WEB_SERVICES) + 1


def test_the_worker_yields_the_cpu_to_the_web_process():
    """Where they share cores, a web process ready to deliver a frame runs first (docs/performance.md)."""
    procfile_worker = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    assert procfile_worker.startswith(f"worker: nice -n {WORKER_NICENESS} celery ")  # as the bench runs its workers
    services = load_compose()["services"]
    assert services["worker"]["cpu_shares"] < services["web-1"].get("cpu_shares", 1024)  # Docker's default: 1024


def test_postgres_and_redis_have_health_checks_the_app_waits_for():
    services = load_compose()["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_configuration_comes_from_the_environment():
    environment = load_compose()["services"]["web-1"]["environment"]
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"} <= set(environment)
    assert environment["DEBUG"] == "false"


def test_dockerfile_installs_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert "FROM python:3.11" in dockerfile


def test_every_web_process_is_python_m_shop_web_with_no_daphne_arguments():
    """Compose, the image, the Procfile and `make run` (both modes) start it one way; shop/web.py has the rest."""
    assert all(load_compose()["services"][name]["command"] == WEB_COMMAND for name in WEB_SERVICES)
    assert image_command() == WEB_COMMAND
    assert procfile_web() == procfile_web("Procfile.embedded") == "web: python -m shop.web"
    assert make_run_recipe(REDIS_URL="")[-1].endswith("honcho --procfile Procfile.embedded start")
    assert make_run_recipe(REDIS_URL="redis://127.0.0.1:6379/9")[-1].endswith("honcho --procfile Procfile start")
    sentinels = {"REDIS_URL": "", "REDIS_SENTINELS": "127.0.0.1:26379", "REDIS_SENTINEL_MASTER": "shop"}
    assert make_run_recipe(**sentinels)[-1].endswith("honcho --procfile Procfile start")


def test_the_image_listens_on_every_interface_at_the_port_nginx_proxies_to():
    environment = image_environment()
    assert environment["WEB_HOST"] == "0.0.0.0"
    assert {port for _, port, _ in upstream_servers()} == {environment["WEB_PORT"]}
    assert ("EXPOSE", environment["WEB_PORT"]) in dockerfile_instructions()


def settings_defaults(*names: str) -> dict[str, str]:
    """What shop/settings.py makes of `names` when the environment does not set them."""
    script = f"import json, shop.settings as s; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={"DEBUG": "true"}, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_compose_hands_the_web_process_knobs_to_the_settings_with_the_settings_defaults():
    """shop/web.py reads them from the settings, so an operator's .env reaches the web process through compose."""
    environment = load_compose()["services"]["web-1"]["environment"]
    knobs = ("WEBSOCKET_LIFETIME", "WEBSOCKET_CONNECT_TIMEOUT", "WEB_HEADER_TIMEOUT", "WEB_DRAIN_SECONDS")
    for name, default in settings_defaults(*knobs).items():
        assert environment[name] == f"${{{name}:-{default:g}}}"


def compose_seconds(duration: str) -> float:
    """Seconds in a compose duration such as `20s`, `1m30s` or `500ms`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_gives_the_web_process_longer_to_stop_than_its_drain_and_last_cancellations():
    """Docker sends SIGKILL when stop_grace_period ends: a drain cut short drops its sockets without a close frame."""
    drain = settings_defaults("WEB_DRAIN_SECONDS")["WEB_DRAIN_SECONDS"]
    grace = compose_seconds(load_compose()["services"]["web-1"]["stop_grace_period"])
    assert grace >= drain + CANCEL_WAIT + 5  # and a few seconds for the process's own start of shutdown


def test_make_run_drains_within_honchos_wait_before_it_kills():
    """`make run` stops under honcho, which sends SIGKILL 5 s (its KILL_WAIT) after Ctrl-C."""
    drain = float(re.search(r"^run: export WEB_DRAIN_SECONDS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1])
    assert drain + CANCEL_WAIT < KILL_WAIT


def test_the_web_process_publishes_no_port_and_only_nginx_is_reachable():
    """A client that reached daphne directly could write its own forwarded headers (docs/reliability.md, attack 1)."""
    services = load_compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}
    assert services["nginx"]["ports"] == ["8000:80"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["nginx"]["volumes"]


def test_the_web_process_trusts_exactly_nginx_s_fixed_address():
    compose = load_compose()
    nginx_address = compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)
    for name in APP_SERVICES:
        assert compose["services"][name]["environment"]["TRUSTED_PROXIES"] == nginx_address


def test_nginx_sends_each_web_process_its_share_by_name_and_skips_one_that_refuses():
    """A process being restarted refuses connections: nginx moves on to the next and leaves it out for a while."""
    servers = upstream_servers()
    assert [host for host, _, _ in servers] == list(WEB_SERVICES)
    assert {parameters for _, _, parameters in servers} == {" max_fails=1 fail_timeout=10s"}
    config = nginx_config()
    assert re.search(r"upstream shop_web \{\s*(#.*\n\s*)*least_conn;", config)  # sockets live long: fewest first
    assert "proxy_next_upstream error timeout;" in config
    assert "proxy_connect_timeout 5s;" in config


def test_the_live_tests_run_the_shipped_nginx_config_with_only_addresses_and_the_log_path_changed():
    """tests/live/nginx.py's rendering: what the e2e and fault tests prove is proven of deploy/nginx.conf."""
    rendered = shipped_config_rendered([7001, 7002, 7003], ["listen 127.0.0.1:7000;"], Path("/tmp/shop-access.log"))

    shipped_lines, rendered_lines = nginx_config().splitlines(), rendered.splitlines()
    removed = [line.strip() for line in shipped_lines if line not in rendered_lines]
    added = [line.strip() for line in rendered_lines if line not in shipped_lines]
    assert removed == [
        "server web-1:8000 max_fails=1 fail_timeout=10s;",
        "server web-2:8000 max_fails=1 fail_timeout=10s;",
        "listen 80;",
        "access_log /var/log/nginx/access.log shop;",
    ]
    assert added == [
        *(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;" for port in (7001, 7002, 7003)),
        "listen 127.0.0.1:7000;",
        "access_log /tmp/shop-access.log shop;",
    ]


def test_nginx_waits_for_every_web_process_to_be_ready():
    depends = load_compose()["services"]["nginx"]["depends_on"]
    assert depends == {name: {"condition": "service_healthy"} for name in WEB_SERVICES}


def test_nginx_keeps_the_request_ids_the_shop_keeps_so_both_logs_name_a_request_alike():
    config = nginx_config()
    kept = re.search(r'map \$http_x_request_id \$shop_request_id \{\s*"~(\S+)" \$http_x_request_id;', config)
    assert kept[1] == f"^{_SANE_REQUEST_ID.pattern}$"
    assert re.search(r"default\s+\$request_id;", config)
    assert "proxy_set_header X-Request-ID $shop_request_id;" in config
    assert "request_id=$shop_request_id" in config and "access_log /var/log/nginx/access.log shop;" in config


def test_nginx_appends_the_client_address_sets_the_scheme_and_passes_websockets_to_web():
    config = nginx_config()
    for directive in (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
    ):
        assert directive in config


def dockerignore_entries() -> set[str]:
    return {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def runtime_modules() -> list[Path]:
    skipped = {"tests", "bench", ".venv", ".git", "node_modules"}
    return [path for path in ROOT.rglob("*.py") if not skipped & set(path.relative_to(ROOT).parts)]


def test_the_image_leaves_out_tests_bench_docs_and_git():
    assert {"tests", "bench", "docs", ".git"} <= dockerignore_entries()


def test_no_runtime_module_imports_the_tests_or_the_bench():
    modules = runtime_modules()
    assert ROOT / "shop" / "management" / "commands" / "seed_demo.py" in modules
    offenders = {
        str(path.relative_to(ROOT)): name
        for path in modules
        for name in imported_modules(path)
        if name.split(".")[0] in {"tests", "bench"}
    }
    assert offenders == {}


def _probe_url(test: list[str]) -> str:
    """The URL a `python -c "...urlopen('<url>'...)"` health check asks."""
    assert test[:3] == ["CMD", "python", "-c"]
    return re.search(r"urlopen\('([^']+)'", test[-1]).group(1)


def test_the_image_checks_liveness_and_compose_checks_the_web_process_readiness():
    """The image's HEALTHCHECK asks /healthz (no I/O); compose's web asks /readyz, and nginx waits for it."""
    healthcheck = next(arguments for name, arguments in dockerfile_instructions() if name == "HEALTHCHECK")
    options, command = healthcheck.split("CMD", 1)
    assert _probe_url(["CMD", *json.loads(command)]) == f"http://127.0.0.1:{image_environment()['WEB_PORT']}/healthz"
    assert "--timeout=" in options and "--interval=" in options
    services = load_compose()["services"]
    for name in WEB_SERVICES:
        assert _probe_url(services[name]["healthcheck"]["test"]) == "http://127.0.0.1:8000/readyz"


def test_roles_other_than_web_do_not_inherit_the_web_process_health_check():
    services = load_compose()["services"]
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["beat"]["healthcheck"] == {"disable": True}
    assert "celery -A celery_app inspect ping" in services["worker"]["healthcheck"]["test"][-1]


def test_the_health_checks_python_compiles_and_answers_through_urlopen_which_raises_on_503():
    services = load_compose()["services"]
    healthcheck = next(arguments for name, arguments in dockerfile_instructions() if name == "HEALTHCHECK")
    for test in (services["web-1"]["healthcheck"]["test"], ["CMD", *json.loads(healthcheck.split("CMD", 1)[1])]):
        ast.parse(test[-1])  # urlopen raises HTTPError on a 503: the check's exit status is 1


def test_the_worker_serves_its_metrics_to_the_private_network_only():
    environment = load_compose()["services"]["worker"]["environment"]
    assert int(environment["CELERY_METRICS_PORT"]) > 0 and environment["CELERY_METRICS_HOST"] == "0.0.0.0"
    subnet = ipaddress.ip_network(load_compose()["networks"]["default"]["ipam"]["config"][0]["subnet"])
    allowed = environment["METRICS_ALLOWED_NETWORKS"].split(":-", 1)[1].rstrip("}")
    assert ipaddress.ip_network(allowed) == subnet
    nginx = nginx_config()
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)


SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def load_sentinel_override():
    return yaml.safe_load((ROOT / "deploy" / "compose.sentinel.yml").read_text())


def sentinel_monitor(service: dict) -> list[str]:
    """The sentinel's `sentinel monitor <master> <host> <port> <quorum>`, split."""
    [monitor] = [line.split() for line in sentinel_config(service) if line.startswith("sentinel monitor ")]
    return monitor[2:]


def sentinel_config(service: dict) -> list[str]:
    """The lines a sentinel service writes to its configuration file (its `printf '%s\\n' ...`)."""
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c")
    words = shlex.split(script)
    assert words[:2] == ["printf", "%s\\n"] and words[-2:] == ["redis-sentinel", "/tmp/sentinel.conf"]
    return words[2 : words.index(">")]


def test_the_sentinel_override_adds_a_replica_of_the_primary_and_three_sentinels_watching_it():
    override = load_sentinel_override()["services"]
    assert {"redis-replica", *SENTINELS} <= set(override)
    replica = override["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    for name in SENTINELS:
        config = sentinel_config(override[name])
        master, host, port, quorum = sentinel_monitor(override[name])
        assert (host, port) == ("redis", "6379")  # compose's own `redis` service is the first primary
        assert len(SENTINELS) // 2 < int(quorum) <= len(SENTINELS)  # a majority: one sentinel alone never fails over
        assert "port 26379" in config
        assert override[name]["healthcheck"]["test"] == ["CMD", "redis-cli", "-p", "26379", "ping"]
        assert override[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_sentinel_override_points_every_app_service_at_the_sentinels_only():
    override = load_sentinel_override()["services"]
    base = load_compose()["services"]
    [master] = {sentinel_monitor(override[sentinel])[0] for sentinel in SENTINELS}
    for name in APP_SERVICES:
        environment = {**base[name]["environment"], **override[name]["environment"]}  # as compose merges them
        assert environment["REDIS_URL"] == ""  # the settings refuse a URL beside the sentinels
        assert environment["REDIS_SENTINELS"].split(",") == [f"{sentinel}:26379" for sentinel in SENTINELS]
        assert environment["REDIS_SENTINEL_MASTER"] == master
        assert {sentinel: override[name]["depends_on"][sentinel]["condition"] for sentinel in SENTINELS} == {
            sentinel: "service_healthy" for sentinel in SENTINELS
        }


def test_the_sentinel_override_only_adds_to_services_that_exist_or_brings_its_own_image():
    base, override = load_compose()["services"], load_sentinel_override()["services"]
    assert [name for name, service in override.items() if name not in base and "image" not in service] == []


def test_the_settings_accept_the_sentinel_overrides_environment_and_send_celery_through_the_sentinels():
    environment = load_sentinel_override()["services"]["web-1"]["environment"]
    script = (
        "import json, shop.settings as s;print(json.dumps([s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={"DEBUG": "true", **environment},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    broker, options = json.loads(result.stdout)
    assert broker == ";".join(f"sentinel://{sentinel}:26379/0" for sentinel in SENTINELS)
    assert options["master_name"] == environment["REDIS_SENTINEL_MASTER"]


def test_uploads_go_to_one_volume_the_web_processes_write_and_nginx_serves_read_only():
    services = load_compose()["services"]
    media_root = services["web-1"]["environment"]["MEDIA_ROOT"]
    for name in WEB_SERVICES:
        assert f"media:{media_root}" in services[name]["volumes"]
        assert services[name]["environment"]["SERVE_MEDIA"] == "false"  # nginx serves it
    assert f"media:{media_root}:ro" in services["nginx"]["volumes"]
    assert "media" in load_compose()["volumes"]
    location = re.search(r"location /media/ \{(.*?)\}", nginx_config(), re.S)[1]
    assert f"alias {media_root}/;" in location and "nosniff" in location and "sandbox" in location
    assert ("RUN", f"useradd --create-home shop && mkdir -p {media_root} && chown shop {media_root}") in (
        dockerfile_instructions()
    )


def load_rabbitmq_override():
    return yaml.safe_load((ROOT / "deploy" / "compose.rabbitmq.yml").read_text())


def test_the_rabbitmq_override_adds_a_broker_with_its_data_on_a_volume_and_a_fixed_node_name():
    rabbitmq = load_rabbitmq_override()["services"]["rabbitmq"]
    assert rabbitmq["hostname"] == "rabbitmq"  # the node's name, and so its data folder's, survive a recreate
    assert "rabbitmq-data:/var/lib/rabbitmq" in rabbitmq["volumes"]
    assert rabbitmq["healthcheck"]["test"][:2] == ["CMD", "rabbitmq-diagnostics"]


def test_the_rabbitmq_override_moves_every_app_service_to_it_and_keeps_redis_for_the_rest():
    base, override = load_compose()["services"], load_rabbitmq_override()["services"]
    environment = override["rabbitmq"]["environment"]
    for name in APP_SERVICES:
        merged = {**base[name]["environment"], **override[name]["environment"]}  # as compose merges them
        assert merged["CELERY_BROKER_URL"] == (
            f"amqp://{environment['RABBITMQ_DEFAULT_USER']}:{environment['RABBITMQ_DEFAULT_PASS']}"
            f"@rabbitmq:5672/{environment['RABBITMQ_DEFAULT_VHOST']}"
        )
        assert merged["REDIS_URL"] == base[name]["environment"]["REDIS_URL"]
        assert override[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_the_settings_accept_the_rabbitmq_overrides_environment_with_quorum_queues_and_confirms():
    base, override = load_compose()["services"], load_rabbitmq_override()["services"]
    environment = {"REDIS_URL": base["web-1"]["environment"]["REDIS_URL"], **override["web-1"]["environment"]}
    script = (
        "import json, shop.settings as s;"
        "print(json.dumps([s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS, s.CELERY_TASK_DEFAULT_QUEUE_TYPE]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={"DEBUG": "true", **environment},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout) == [environment["CELERY_BROKER_URL"], {"confirm_publish": True}, "quorum"]
