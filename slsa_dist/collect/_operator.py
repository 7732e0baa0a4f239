"""What an operator asks of a running coordinator (``slsa-dist finalize``).

The one place besides the agents where a protobuf request is made: the CLI passes
plain values and gets plain values back (no ``_pb`` type leaves ``collect``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect._wire import open_channel
from slsa_dist.errors import TransportError

__all__ = ["Finalized", "request_finalize"]


@dataclass(frozen=True)
class Finalized:
    bundle: str
    complete: bool
    missing_ranks: tuple[int, ...]


def request_finalize(coordinator: str, job_id: str, *,
                     tls_dir: str | os.PathLike[str] | None = None,
                     timeout: float = 60.0) -> Finalized:
    """Ask the coordinator at ``coordinator`` to finalize ``job_id`` now.

    Raises:
        TransportError: the coordinator could not be reached or refused.
    """
    with open_channel(coordinator, tls_dir=tls_dir) as channel:
        stub = pb_grpc.CollectorStub(channel)
        try:
            reply = stub.Finalize(pb.FinalizeRequest(job_id=job_id, reason="request"),
                                  timeout=timeout)
        except grpc.RpcError as exc:
            raise TransportError(f"finalize: {exc.code().name}: {exc.details()}") from None
    return Finalized(bundle=reply.bundle_path, complete=reply.complete,
                     missing_ranks=tuple(reply.missing_ranks))
