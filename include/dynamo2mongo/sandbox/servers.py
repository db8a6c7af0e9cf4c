"""Start and stop the sandbox's servers: a moto server and a MongoDB wire server, on loopback.

Each server is a child process that prints ``READY <url>`` and exits when its stdin closes, so it
cannot outlive the process that started it, even after a SIGKILL.
``python -m dynamo2mongo.sandbox.servers up`` keeps both running for manual exploration.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

ITEMS_PER_FILE_ENV = "D2M_SANDBOX_EXPORT_ITEMS_PER_FILE"
JAVA_SOURCES = Path(__file__).resolve().parent / "java"
MONGO_JAVA_SERVER_VERSION = "1.47.0"


class ServerError(RuntimeError):
    """A sandbox server did not start; the message carries the end of its output."""


def cache_dir() -> Path:
    default = Path(__file__).resolve().parents[3] / ".sandbox"
    return Path(os.environ.get("D2M_CACHE_DIR", default))


def sandbox_env(endpoint: str) -> dict[str, str]:
    """Environment for AWS SDK clients that talk to the moto server."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def _start(command: list[str], name: str, timeout: float, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )
    lines: list[str] = []
    ready: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not ready and line.startswith("READY "):
                ready.append(line.split(" ", 1)[1].strip())
            else:
                lines.append(line)
                del lines[:-40]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    waited = 0.0
    while not ready and process.poll() is None and waited < timeout:
        reader.join(0.05)
        waited += 0.05
    if not ready:
        _stop(process)
        tail = "".join(lines[-40:])
        raise ServerError(f"{name} did not start within {timeout:.0f}s (exit code {process.returncode}):\n{tail}")
    return process, ready[0]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def moto_server(export_items_per_file: int | None = None) -> Iterator[str]:
    """A moto server (every AWS API, exports in the AWS layout); yields its endpoint URL.

    ``export_items_per_file`` splits exports into files of that many items (AWS decides that itself;
    tests use small files to exercise the mapping over several files).
    """
    env = dict(os.environ)
    if export_items_per_file:
        env[ITEMS_PER_FILE_ENV] = str(export_items_per_file)
    command = [sys.executable, "-m", "dynamo2mongo.sandbox.moto_server", "--port", "0"]
    process, url = _start(command, "moto server", 60, env)
    try:
        yield url
    finally:
        _stop(process)


def mongo_java_server_classpath() -> str:
    """Build the launcher with Maven (from Maven Central) once per source change; return its classpath."""
    digest = hashlib.sha256()
    for source in sorted(JAVA_SOURCES.iterdir()):
        digest.update(source.name.encode() + source.read_bytes())
    build = cache_dir() / "mongo-java-server" / digest.hexdigest()[:16]
    jar = build / "mongo-sandbox-1.jar"
    if not jar.exists():
        print(f"building mongo-java-server {MONGO_JAVA_SERVER_VERSION} with Maven (first use; Maven Central) ...",
              file=sys.stderr, flush=True)
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(JAVA_SOURCES / "pom.xml"), "package", f"-Dd2m.buildDir={build}"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not jar.exists():
            raise ServerError(
                f"building mongo-java-server {MONGO_JAVA_SERVER_VERSION} with Maven failed "
                f"(is Maven Central reachable? or set MONGO_URI):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
    return os.pathsep.join([str(jar), str(build / "lib" / "*")])


@contextlib.contextmanager
def mongo_server() -> Iterator[str]:
    """$MONGO_URI when set (nothing is started), else mongo-java-server with the oplog on."""
    if os.environ.get("MONGO_URI"):
        yield os.environ["MONGO_URI"]
        return
    command = ["java", "-Xmx4g", "-cp", mongo_java_server_classpath(), "MongoSandbox", "0"]
    process, uri = _start(command, "mongo-java-server", 60)
    try:
        yield uri
    finally:
        _stop(process)


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if args != ["up"]:
        raise SystemExit("usage: python -m dynamo2mongo.sandbox.servers up")
    with moto_server() as endpoint, mongo_server() as uri:
        print(f"moto server: {endpoint}\nMongoDB:     {uri}\nexport " + " ".join(
            f"{k}={v}" for k, v in sandbox_env(endpoint).items()) + f" MONGO_URI={uri}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
