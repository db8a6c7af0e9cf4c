"""Real receivers for the notifiers: an SQS queue subscribed to an SNS topic on the moto server, an SMTP
server (aiosmtpd) and an HTTP server standing in for a Slack incoming webhook, all on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

SLACK_TOKEN = "T0000/B0000/not-a-real-secret-token"


class SnsQueue:
    """An SNS topic whose messages land in an SQS queue we can read."""

    def __init__(self, session: Any, endpoint: str):
        self.sns = session.client("sns", endpoint_url=endpoint, region_name="us-east-1")
        self.sqs = session.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        name = f"d2m-alerts-{uuid.uuid4().hex[:8]}"
        self.topic_arn = self.sns.create_topic(Name=name)["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def receive(self, wait_seconds: float = 10.0, expect: int = 1) -> list[dict[str, str]]:
        """The SNS envelopes (Subject, Message) received, waiting until ``expect`` arrived or time is up."""
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and len(found) < expect:
            reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in reply.get("Messages", []):
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.collector = _Collector()
        # aiosmtpd checks its own port after starting, so it needs a known one rather than 0.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Any]:
        return self.collector.messages

    def connection(self) -> dict[str, Any]:
        return {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "dynamo2mongo@example.com",
                          "timeout": 10, "retry_limit": 1}}


class SlackServer:
    """Answers like a Slack incoming webhook; ``fail`` makes it answer 500."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if owner.fail:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"server_error")
                    return
                owner.posts.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> "SlackServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def connection(self) -> dict[str, Any]:
        return {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{self.server.server_address[1]}/services",
                "password": SLACK_TOKEN}
