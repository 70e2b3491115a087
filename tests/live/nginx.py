"""A real nginx in front of test web servers, configured by the shipped deploy/nginx.conf.

The test rewrites only where it listens (loopback ports instead of 80; one with TLS, a self-signed certificate
for 127.0.0.1, as an operator adds one), where it proxies to (the test's daphne processes instead of web-1:8000
and web-2:8000, each with the shipped line's parameters) and where it writes its access log; every other line is
the shipped one (shipped_config_rendered). nginx runs in the foreground as a subprocess and is stopped by its caller.
"""

import datetime
import ipaddress
import os
import re
import shutil
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import IN_CI
from tests.live.servers import POLL_INTERVAL, ROOT, LoopbackEndpoint, ManagedProcess, WebServer, wait_until_serving

SHIPPED_CONFIG = ROOT / "deploy" / "nginx.conf"
SHIPPED_UPSTREAM_SERVER = re.compile(r"^( *)server web-\d+:8000((?: [^;]+)?);\n", re.M)
SHIPPED_LISTEN = "    listen 80;\n"
SHIPPED_ACCESS_LOG = "access_log /var/log/nginx/access.log "


def nginx_binary() -> str:
    """Debian's nginx (/usr/sbin is not on every PATH); a missing one fails under CI, else skips."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        message = "nginx is not installed (apt-get install nginx; .ci/run installs it)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@dataclass
class Proxy(LoopbackEndpoint):
    """A running nginx: plain HTTP on `port`, TLS on `tls_port`, and the certificate clients should trust."""

    process: ManagedProcess
    port: int
    tls_port: int
    certificate: Path
    access_log: Path

    def access_log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def access_log_line(self, request_id: str, deadline: float = 10.0) -> str:
        """The access log's line for the request logged under `request_id` (nginx writes it once the answer is sent)."""
        end = time.monotonic() + deadline
        while not (found := [line for line in self.access_log_lines() if f" request_id={request_id} " in line]):
            assert time.monotonic() < end, f"nginx logged no request {request_id!r}:\n" + self.access_log.read_text()
            time.sleep(POLL_INTERVAL)
        assert len(found) == 1, found
        return found[0]

    @property
    def tls_base_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate))


def _free_port() -> int:
    # nginx cannot report a port the OS picked, so ask for one and hand it over (the race is loopback-only).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    certificate_path, key_path = folder / "proxy.crt", folder / "proxy.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


def shipped_config_rendered(upstream_ports: list[int], listen: list[str], access_log: Path) -> str:
    """deploy/nginx.conf with `upstream_ports` on loopback for its web-N lines, `listen` for its listen line, and
    `access_log` for its access log's path; nothing else changed."""
    shipped = SHIPPED_CONFIG.read_text()
    servers = SHIPPED_UPSTREAM_SERVER.findall(shipped)
    assert servers and SHIPPED_LISTEN in shipped and SHIPPED_ACCESS_LOG in shipped, "deploy/nginx.conf changed shape"
    (indent, parameters), *_ = servers
    assert set(servers) == {(indent, parameters)}, "every web process's upstream line is alike"
    lines = "".join(f"{indent}server 127.0.0.1:{port}{parameters};\n" for port in upstream_ports)
    first = SHIPPED_UPSTREAM_SERVER.search(shipped).start()
    rendered = shipped[:first] + lines + SHIPPED_UPSTREAM_SERVER.sub("", shipped[first:])
    rendered = rendered.replace(SHIPPED_LISTEN, "".join(f"    {line}\n" for line in listen))
    return rendered.replace(SHIPPED_ACCESS_LOG, f"access_log {access_log} ")


def start_nginx(webs: list[WebServer], workdir: Path) -> Proxy:
    """nginx with the shipped config, proxying to `webs`, serving the login page before this returns."""
    binary = nginx_binary()
    port, tls_port = _free_port(), _free_port()
    folder = workdir / f"nginx-{port}"
    folder.mkdir()
    certificate, key = _self_signed_certificate(folder)
    listen = [
        f"listen 127.0.0.1:{port};",
        f"listen 127.0.0.1:{tls_port} ssl;",
        f"ssl_certificate {certificate};",
        f"ssl_certificate_key {key};",
    ]
    access_log = folder / "access.log"
    (folder / "shop.conf").write_text(shipped_config_rendered([web.port for web in webs], listen, access_log))
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in kinds)
    (folder / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log stderr info;\n"
        # As root, nginx would run its worker as nobody, who cannot enter pytest's private temporary folder.
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"events {{ worker_connections 512; }}\n"
        f"http {{\n{temp}\n    include {folder / 'shop.conf'};\n}}\n"
    )
    argv = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"]
    env = {"PATH": os.environ.get("PATH", "")}
    process = ManagedProcess(f"nginx-{port}", argv, env, folder / "nginx.log").start()
    proxy = Proxy(process, port, tls_port, certificate, access_log)
    try:
        wait_until_serving(process, proxy.base_url)
    except BaseException:
        process.stop()
        raise
    return proxy
