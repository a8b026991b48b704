"""The peer's HTTP side for `bench enroll`: static boot files and a stub enrollment endpoint.

    python -m bench._static_boot ADDRESS PORT DOCROOT RECORD

GET serves files under DOCROOT (the query string is ignored: `/boot/ipxe?mac=…` is the
one boot script written there beforehand); POST /api/v1/enroll answers
{"action": "poweroff"} and appends the body to RECORD. Writes RECORD.ready once it listens.
"""

import json
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPLY = json.dumps({"action": "poweroff"}).encode()


class Handler(SimpleHTTPRequestHandler):
    record: Path

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/api/v1/enroll":
            self.send_error(404)
            return
        with self.record.open("ab") as f:
            f.write(body + b"\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args):
        pass


def main(address: str, port: int, docroot: str, record: Path) -> None:
    Handler.record = record
    server = ThreadingHTTPServer((address, port), partial(Handler, directory=docroot))
    Path(f"{record}.ready").touch()
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
