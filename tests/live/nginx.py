"""A real nginx in front of a test web server, configured by the shipped deploy/nginx.conf.

The test rewrites only where it listens (loopback ports instead of 80; one with TLS, a self-signed certificate
for 127.0.0.1, as an operator adds one) and where it proxies to (the test's daphne instead of web:8000); every
proxy_set_header is the shipped one. nginx runs in the foreground as a subprocess and is stopped by the fixture.
"""

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import IN_CI
from tests.live.servers import ROOT, LoopbackEndpoint, ManagedProcess, WebServer, wait_until_serving

SHIPPED_CONFIG = ROOT / "deploy" / "nginx.conf"


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


def start_nginx(web: WebServer, workdir: Path) -> Proxy:
    """nginx with the shipped server block, proxying to `web`, serving the login page before this returns."""
    binary = nginx_binary()
    folder = workdir / f"nginx-{web.port}"
    folder.mkdir()
    certificate, key = _self_signed_certificate(folder)
    port, tls_port = _free_port(), _free_port()
    shipped = SHIPPED_CONFIG.read_text()
    assert "server web:8000;" in shipped and "    listen 80;\n" in shipped, "deploy/nginx.conf changed shape"
    server_block = shipped.replace("server web:8000;", f"server 127.0.0.1:{web.port};").replace(
        "    listen 80;\n",
        f"    listen 127.0.0.1:{port};\n    listen 127.0.0.1:{tls_port} ssl;\n"
        f"    ssl_certificate {certificate};\n    ssl_certificate_key {key};\n",
    )
    (folder / "shop.conf").write_text(server_block)
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in kinds)
    (folder / "nginx.conf").write_text(
        f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log stderr info;\n"
        # As root, nginx would run its worker as nobody, who cannot enter pytest's private temporary folder.
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"events {{ worker_connections 512; }}\n"
        f"http {{\n    access_log {folder / 'access.log'};\n{temp}\n    include {folder / 'shop.conf'};\n}}\n"
    )
    argv = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"]
    env = {"PATH": os.environ.get("PATH", "")}
    process = ManagedProcess(f"nginx-{web.port}", argv, env, folder / "nginx.log").start()
    proxy = Proxy(process, port, tls_port, certificate)
    try:
        wait_until_serving(process, proxy.base_url)
    except BaseException:
        process.stop()
        raise
    return proxy
