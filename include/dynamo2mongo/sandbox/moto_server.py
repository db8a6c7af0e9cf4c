"""A moto server for the sandbox and the tests, with exports in the AWS layout.

``python -m dynamo2mongo.sandbox.moto_server --port 0`` prints ``READY http://127.0.0.1:PORT`` once it
accepts connections, and exits when its stdin closes (so it never outlives its parent).

Its streams write no record for a write that changes nothing, as DynamoDB's (moto_streams).

Requests are served one at a time: moto's DynamoDB backend does not lock an item while it writes
it, so two clients writing one key at once (both sync directions do, by design) could otherwise
leave stream records that disagree with the table. DynamoDB itself serializes writes per item.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from dynamo2mongo.sandbox import moto_export, moto_streams


class _OneAtATime:
    def __init__(self, app: Any):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynamo2mongo.sandbox.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    moto_export.install()
    moto_streams.install()
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    print(f"READY http://{host}:{port}", flush=True)
    while sys.stdin.read(1):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
