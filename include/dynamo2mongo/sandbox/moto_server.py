"""A moto server for the sandbox and the tests, with exports in the AWS layout.

``python -m dynamo2mongo.sandbox.moto_server --port 0`` prints ``READY http://127.0.0.1:PORT`` once it
accepts connections, and exits when its stdin closes (so it never outlives its parent).
"""

from __future__ import annotations

import argparse
import sys

from moto.server import ThreadedMotoServer

from dynamo2mongo.sandbox import moto_export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dynamo2mongo.sandbox.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    moto_export.install()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"READY http://{host}:{port}", flush=True)
    while sys.stdin.read(1):
        pass
    server.stop()


if __name__ == "__main__":
    main()
