"""An S3-API stand-in for the object-store contract tests: moto's server on 127.0.0.1, in this process's threads.

Only the S3 calls s3fs makes are served (moto implements the S3 REST API); the real services cannot run here.
The tests reach it through the same FsspecStore and settings a deployment uses (``artifact_store: s3://...``,
``artifact_store_options: {endpoint_url: ...}``, credentials in the environment).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class S3StandIn:
    endpoint_url: str

    def bucket(self) -> str:
        """A new, empty bucket; its name."""
        import boto3

        name = f"driftgate-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")
        client.create_bucket(Bucket=name)
        return name

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint_url}


@pytest.fixture(scope="session")
def s3_stand_in() -> Iterator[S3StandIn]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3StandIn(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in the environment, where boto and s3fs read them (never in settings)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "driftgate-test",
        "AWS_SECRET_ACCESS_KEY": "driftgate-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
