"""A real HTTP(S) webhook receiver on a free loopback port, scripted answer by answer."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    answers: list[int] = field(default_factory=list)  # status codes to answer, in order; then 200
    location: str = ""  # the Location header sent with a 3xx answer
    requests: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    @property
    def receiver(self) -> Receiver:
        # Per server, not per class: two receivers started in one test each keep their own log.
        return self.server.receiver

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.receiver.requests.append(Received({k: v for k, v in self.headers.items()}, body))
        status = self.receiver.answers.pop(0) if self.receiver.answers else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        if 300 <= status < 400:
            self.send_header("Location", self.receiver.location)
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"nope")

    def log_message(self, *args):
        pass


def start_receiver(tls: tuple[str, str] | None = None) -> tuple[Receiver, ThreadingHTTPServer]:
    """Serve on 127.0.0.1; with ``tls`` (certificate file, key file) over HTTPS."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver = Receiver(url=f"{scheme}://127.0.0.1:{server.server_address[1]}/molam/notices")
    server.receiver = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
