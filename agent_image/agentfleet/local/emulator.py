"""The embedded AWS emulator: moto in server mode, in its own process, on loopback.

Clients must use `http://localhost:PORT` (moto's CloudFormation parses S3 template URLs
by host name). Step Functions executions are switched on so state machines really run.

`start(iam=True)` makes it enforce IAM: an admin user (Action "*") is created first, then
`POST /moto-api/reset-auth 0` tells moto to authenticate and authorize every later request
(moto/moto_api/_internal/responses.py reset_auth_response sets INITIAL_NO_AUTH_ACTION_COUNT
and restarts the count; docs/docs/iam.rst, moto 5.2.5). From then on only keys of IAM users in
the emulator work: `env()` gives the admin's (deploy, replay, test setup), workers get their
own (agentfleet.local.iam). Refused calls are logged by the server (moto_server.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
# Fake credentials: moto accepts anything until IAM is enforced; real ones must never reach the emulator.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass(frozen=True)
class Identity:
    """An IAM user's access key in the emulator."""

    user: str
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        """Credential variables for a client process. No session token: moto rejects a user key with one."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def create_user(iam: Any, user: str, documents: Iterable[tuple[str, str, dict[str, Any]]]) -> Identity:
    """Create `user` with (name, kind, document) policies: managed ones created and attached, inline ones put."""
    iam.create_user(UserName=user)
    for name, kind, document in documents:
        body = json.dumps(document)
        if kind == "managed":
            arn = iam.create_policy(PolicyName=f"{user}-{name}", PolicyDocument=body)["Policy"]["Arn"]
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
        else:
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=body)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Identity(user, key["AccessKeyId"], key["SecretAccessKey"])


ADMIN_USER = "agentfleet-admin"
_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Emulator:
    """A running moto server; `env()` gives the variables a client process needs."""

    port: int
    process: subprocess.Popen[bytes]
    denied_log: Path | None = None  # where the server records refused calls (IAM enforced)
    admin: Identity | None = field(default=None)

    def run_state_machines_as(self, identity: Identity) -> None:
        """State machine service integrations run as `identity` from now on (see moto_server)."""
        assert self.denied_log is not None, "only an IAM-enforced emulator needs this"
        path = self.denied_log.with_name(self.denied_log.stem + ".states-key.json")
        path.write_text(json.dumps({"access_key_id": identity.access_key_id,
                                    "secret_access_key": identity.secret_access_key}), encoding="utf-8")

    @property
    def iam_enforced(self) -> bool:
        return self.admin is not None

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        """Client variables: the admin's key when IAM is enforced, else the fake credentials."""
        if self.admin is None:
            return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}
        base = {k: v for k, v in CREDENTIALS.items() if k != "AWS_SESSION_TOKEN"}
        # An empty token: moto refuses a user's key sent with one; boto3 ignores an empty token.
        return {**base, **self.admin.env(), "AWS_SESSION_TOKEN": "", "AWS_ENDPOINT_URL": self.endpoint}

    def denied(self) -> list[dict[str, Any]]:
        """Every call the server refused so far (unknown key, bad signature, AccessDenied)."""
        if self.denied_log is None or not self.denied_log.exists():
            return []
        return [json.loads(line) for line in self.denied_log.read_text(encoding="utf-8").splitlines() if line]

    def set_auth(self, no_auth_count: float) -> None:
        """moto's INITIAL_NO_AUTH_ACTION_COUNT: 0 enforces IAM from the next request, inf switches it off."""
        request = urllib.request.Request(  # noqa: S310 - our own http://localhost endpoint
            self.endpoint + "/moto-api/reset-auth", data=str(no_auth_count).encode(), method="POST",
            headers={"Content-Type": "text/plain"})  # a form content type would leave the body unread
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own http://localhost endpoint
            pass

    def enforce_iam(self) -> Identity:
        """Create the admin user while nothing is checked, then enforce IAM; returns the admin."""
        import boto3

        self.set_auth(float("inf"))
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")  # noqa: S106 - the emulator's fake key, before enforcement
        self.admin = create_user(iam, ADMIN_USER, [("admin", "inline", _ADMIN_POLICY)])
        self.set_auth(0)
        return self.admin

    def post(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own http://localhost endpoint
            self.endpoint + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own http://localhost endpoint
            pass

    def reset(self) -> None:
        """Drop every resource (moto's reset API), keep the process; IAM stays enforced with a new admin key."""
        self.post("/moto-api/reset", {})
        self.enable_execution()
        if self.admin is not None:
            self.enforce_iam()

    def enable_execution(self) -> None:
        self.post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(port: int | None = None, timeout: float = 30.0, log_path: str | None = None, *,
          iam: bool = False, denied_log: Path | None = None) -> Emulator:
    """Start moto_server on a free loopback port and wait until it answers; `iam=True` enforces IAM
    and records refused calls in `denied_log` (default: beside log_path, or a temporary file)."""
    port = port or free_port()
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    if iam and denied_log is None:
        denied_log = Path(log_path).with_suffix(".denied.jsonl") if log_path else \
            Path(tempfile.mkdtemp(prefix="agentfleet-moto-")) / "denied.jsonl"
    env = {**os.environ, **CREDENTIALS}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)  # enforcement is switched on below, after the admin exists
    if denied_log is not None:
        # A log (or state machine key) left by an earlier run in the same directory is not this run's.
        denied_log.unlink(missing_ok=True)
        denied_log.with_name(denied_log.stem + ".states-key.json").unlink(missing_ok=True)
        env["AGENTFLEET_DENIED_LOG"] = str(denied_log)
        env["AGENTFLEET_STATE_MACHINE_KEY"] = str(denied_log.with_name(denied_log.stem + ".states-key.json"))
    process = subprocess.Popen(
        [sys.executable, "-m", "agentfleet.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=out, stderr=out, env=env,
    )
    emulator = Emulator(port, process, denied_log)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(emulator.endpoint + "/moto-api/", timeout=2):  # noqa: S310 - loopback
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                emulator.stop()
                raise RuntimeError(f"moto server did not start on port {port}") from None
            time.sleep(0.2)
    emulator.enable_execution()
    if iam:
        emulator.enforce_iam()
    return emulator
