"""IMDSv2 client against a real loopback HTTP server that enforces the session token."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentfleet.ops.instance import InstanceMetadata, InstanceMetadataError


class FakeImds:
    """Token PUT with a TTL header; every GET must carry a currently valid token, else 401."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {
            "/latest/meta-data/instance-id": "i-0abc",
            "/latest/meta-data/placement/region": "us-east-2",
            "/latest/meta-data/instance-type": "trn3.48xlarge",
            "/latest/meta-data/autoscaling/target-lifecycle-state": "InService",
        }
        self.valid: set[str] = set()
        self.token_puts: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if self.path != "/latest/api/token" or not ttl:
                    self._send(400, "missing ttl")
                    return
                token = f"tok-{len(owner.token_puts)}"
                owner.token_puts.append(ttl)
                owner.valid.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") not in owner.valid:
                    self._send(401)
                elif self.path in owner.paths:
                    self._send(200, owner.paths[self.path])
                else:
                    self._send(404, "Not Found")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_reads_with_one_cached_token(imds: FakeImds) -> None:
    client = InstanceMetadata(imds.url, token_ttl_seconds=600)
    assert client.instance_id() == "i-0abc"
    assert client.region() == "us-east-2"
    assert client.instance_type() == "trn3.48xlarge"
    assert client.target_lifecycle_state() == "InService"
    assert imds.token_puts == ["600"], "one token for all reads"


def test_token_is_refreshed_before_expiry_and_after_401(imds: FakeImds) -> None:
    now = [0.0]
    client = InstanceMetadata(imds.url, token_ttl_seconds=120, clock=lambda: now[0])
    client.instance_id()
    now[0] = 61.0  # within the last minute of the TTL: refresh early
    client.instance_id()
    assert len(imds.token_puts) == 2
    imds.valid.clear()  # IMDS forgot our token (e.g. restart): one 401, one new token, success
    assert client.region() == "us-east-2"
    assert len(imds.token_puts) == 3


def test_spot_notice_404_and_json(imds: FakeImds) -> None:
    client = InstanceMetadata(imds.url)
    assert client.spot_interruption() is None
    imds.paths["/latest/meta-data/spot/instance-action"] = json.dumps(
        {"action": "terminate", "time": "2026-11-02T08:22:00Z"})
    assert client.spot_interruption() == {"action": "terminate", "time": "2026-11-02T08:22:00Z"}
    imds.paths["/latest/meta-data/spot/instance-action"] = "not json"
    with pytest.raises(InstanceMetadataError, match="not JSON"):
        client.spot_interruption()


def test_unreachable_imds_means_not_on_ec2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connection refused
    client = InstanceMetadata(f"http://127.0.0.1:{port}", timeout=0.5)
    assert client.instance_id() is None and client.spot_interruption() is None


def test_bad_endpoint_and_ttl_are_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        InstanceMetadata("file:///etc/passwd")
    with pytest.raises(ValueError, match="21600"):
        InstanceMetadata("http://127.0.0.1:1", token_ttl_seconds=0)
