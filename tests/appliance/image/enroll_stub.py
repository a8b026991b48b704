"""A stand-in enrollment API for the boot tests, run inside a test namespace.

`python enroll_stub.py ADDRESS PORT RECORD [FAILURES]` answers the first FAILURES (default 0)
POSTs with 503 and every later one with {"action": "poweroff", "hostname": "node-1"}; it
appends one JSON line per request to RECORD: path, headers, the body as sent and the
status answered. It writes RECORD.ready once it listens.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

REPLY = {"action": "poweroff", "hostname": "node-1"}


def main(address: str, port: int, record: Path, failures: int) -> None:
    answered = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = 503 if len(answered) < failures else 200
            answered.append(status)
            entry = {"path": self.path, "headers": dict(self.headers.items()),
                     "body": body.decode("latin-1"), "status": status}
            with record.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            reply = json.dumps(REPLY if status == 200 else {"error": "unavailable"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = HTTPServer((address, port), Handler)
    Path(f"{record}.ready").touch()
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if sys.argv[4:] else 0)
