"""A push service of the tests' own, and the browser's side of Web Push, for testing what the shop sends.

`LocalPushService` is a real HTTP server on 127.0.0.1 (a thread of the test process) that records each request
and answers as told. `BrowserKeys` is what a browser makes when it subscribes: a P-256 key pair and an auth
secret; `decrypt` opens a push message with them (aes128gcm, RFC 8291) as the browser would. `vapid_claims`
checks the request's `Authorization: vapid t=…, k=…` (RFC 8292): the JWT's ES256 signature, by the key it names.
"""

import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from notifications.vapid import b64url_decode, b64url_encode, p256_public_key_decode, p256_public_key_encode

# How long a request the service was told to leave unanswered waits for the test to end, at most.
UNANSWERED_CEILING = 30.0


@dataclass
class PushRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalPushService:
    """A push service on 127.0.0.1: records every request; answers 201 unless told otherwise for a path."""

    requests: list[PushRequest] = field(default_factory=list)
    # path -> status to answer, or None to leave the request unanswered until the service stops.
    answers: dict[str, int | None] = field(default_factory=dict)
    # Called with each request before it is answered (in the server's thread).
    on_request: list = field(default_factory=list)

    def start(self) -> "LocalPushService":
        service = self
        self._stopping = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = PushRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                service.requests.append(request)
                for hook in service.on_request:
                    hook(request)
                status = service.answers.get(self.path, 201)
                if status is None:
                    service._stopping.wait(UNANSWERED_CEILING)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def requests_to(self, name: str) -> list[PushRequest]:
        return [request for request in self.requests if request.path == f"/push/{name}"]

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@dataclass(frozen=True)
class BrowserKeys:
    """A browser's side of one subscription."""

    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def generate(cls) -> "BrowserKeys":
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        return p256_public_key_encode(self.private_key.public_key())

    @property
    def auth(self) -> str:
        return b64url_encode(self.auth_secret)

    def subscription_json(self, endpoint: str) -> dict:
        """What `PushSubscription.toJSON()` gives the page."""
        return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def decrypt(self, body: bytes) -> dict:
        """The push message's JSON, decrypted as the browser does (the sender's key is in the body's header)."""
        return json.loads(
            http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm")
        )


def vapid_claims(authorization: str, *, public_key: str) -> dict:
    """The claims of a VAPID `Authorization` header, once its JWT's signature checks out with `public_key`,
    the key the header names (`k`); AssertionError otherwise."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", authorization
    parts = dict(part.strip().split("=", 1) for part in params.split(","))
    assert parts["k"] == public_key, "the header names another key than the shop's"
    header_b64, claims_b64, signature_b64 = parts["t"].split(".")
    assert json.loads(b64url_decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    signature = b64url_decode(signature_b64)
    assert len(signature) == 64, "ES256 signs with r and s of 32 bytes each (RFC 7518, 3.4)"
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    p256_public_key_decode(public_key).verify(  # raises InvalidSignature
        der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
    )
    return json.loads(b64url_decode(claims_b64))
