#!/usr/bin/env python3
"""The webhook examples/polyglot's notify stage posts to: prints each JSON body it receives and
answers 200. Start it first, in one command (Ctrl-C stops it):

    python3 examples/polyglot/webhook.py            # 127.0.0.1:18090
    python3 examples/polyglot/webhook.py --port N   # then change the port in pipeline.toml
"""

import argparse
import http.server
import sys


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        print(f"webhook: {self.command} {self.path}: {body}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18090)
    port = parser.parse_args().port
    server = http.server.HTTPServer(("127.0.0.1", port), Hook)
    print(f"webhook: listening on http://127.0.0.1:{port}/hook", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
