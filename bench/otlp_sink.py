"""An OTLP/HTTP sink for benchmarks: accepts every export on /v1/traces, answers
200, keeps nothing; run as its own process, as a collector would be.

    python bench/otlp_sink.py --port 4318

On SIGTERM or SIGINT it prints one JSON line: how many exports and bytes it took.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An empty ExportTraceServiceResponse is zero bytes of protobuf.
_EMPTY = b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    taken = {"exports": 0, "bytes": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            with lock:
                taken["exports"] += 1
                taken["bytes"] += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.write(_EMPTY)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(*_args: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    server.serve_forever()
    server.server_close()
    print(json.dumps(taken), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
