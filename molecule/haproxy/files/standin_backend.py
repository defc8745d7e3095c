"""A stand-in HTTP backend for role scenarios: not the fleet app.

Answers /healthz with 200 and every other GET with JSON naming this host, the path
and the request headers it got, so tests can see where a request went and what the
proxies in front added. While /run/standin-backend.unhealthy exists, /healthz alone
answers 503 (a failing health check on a server that still serves). Port from argv[1].
"""

import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = socket.gethostname()
UNHEALTHY = "/run/standin-backend.unhealthy"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        status = 200
        if self.path == "/healthz":
            status = 503 if os.path.exists(UNHEALTHY) else 200
            body = f"{'ok' if status == 200 else 'unhealthy'} {HOST}\n".encode()
            ctype = "text/plain"
        else:
            body = json.dumps({"host": HOST, "path": self.path, "headers": dict(self.headers)}).encode()
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
