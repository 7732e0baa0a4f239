"""The node relay: a node's ranks report to its node agent, which forwards in batches.

Without it every rank holds its own connection to the coordinator: 65,536
ranks are 65,536 connections and as many small RPCs at every flush. With it
the ranks of a node talk to their node agent over a Unix socket (the node
agent lives as long as the launcher, across worker restarts), and the node
agent forwards their registrations and reports in ONE ``Relay`` call at a
time: coordinator connections equal nodes.

Nothing changes for a rank's agent but the address: the relay serves the same
``RegisterRank`` and ``Report`` calls, and answers each only once the
coordinator answered it (so an acknowledgement still means durably journaled),
with the coordinator's own status and resync mark when it refused.

Flow control (ADR 0012): a batch from 16 KiB asks the coordinator for room
first (``Reserve``) and is sent once it has some, so every node sending at
once waits here, not in the coordinator's memory. A batch the coordinator
refuses under load (``RESOURCE_EXHAUSTED`` with ``retry-after-ms``, before any
work) is sent again after that wait, with jitter, for up to half the relay's
deadline; past that its ranks are told, and their agents wait as told.

Trust (ADR 0010): the relay is the node's trust unit. The coordinator accepts a
relayed item only for a rank registered under the relaying node, which is what
that node's certificate may already do on its own; every relayed attempt is
recorded ``relayedBy`` in the provenance.

>>> # relay = NodeRelay(coordinator="10.0.0.1:50051", job_id="job", node_id="node-3",
>>> #                   socket_path="/run/slsa/job.sock"); address = relay.start()
>>> # ... ranks run with SLSA_RELAY=address ...; relay.close()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from slsa_dist._pb.v1 import collector_pb2 as pb
from slsa_dist._pb.v1 import collector_pb2_grpc as pb_grpc
from slsa_dist.collect import _wire as wire
from slsa_dist.collect._agent import retry_delay

__all__ = ["NodeRelay"]

log = logging.getLogger(__name__)

# A Relay call at least this large asks the coordinator for room first (Reserve), so a
# burst of every node waits here instead of in the coordinator's memory; smaller ones
# (registrations, the usual flush of a few events) go straight.
RESERVE_ABOVE = 16 << 10


@dataclass
class _Call:
    item: pb.RelayItem
    done: threading.Event = field(default_factory=threading.Event)
    result: pb.RelayResult | None = None
    # The whole Relay call failed: its status, detail, resync mark and retry-after (s).
    failure: tuple[grpc.StatusCode, str, bool, float | None] | None = None


class NodeRelay:
    """Serves a node's ranks on a Unix socket and forwards their calls in batches."""

    def __init__(self, *, coordinator: str, job_id: str, node_id: str,
                 socket_path: str | os.PathLike[str],
                 credentials: grpc.ChannelCredentials | None = None,
                 flush_interval: float = 0.01, batch_max: int = 512,
                 rpc_timeout: float = 20.0, reserve_above: int = RESERVE_ABOVE) -> None:
        wire.require_tls_or_loopback(coordinator, tls=credentials is not None)
        self.coordinator = coordinator
        self.job_id = job_id
        self.node_id = node_id
        self.socket_path = Path(socket_path)
        self._credentials = credentials
        self._interval = flush_interval
        self._batch_max = batch_max
        self._timeout = rpc_timeout
        self._reserve_above: int | None = reserve_above  # None: the coordinator cannot
        self._queue: deque[_Call] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._server: grpc.Server | None = None
        self._thread: threading.Thread | None = None
        self.forwarded = 0  # Relay calls made, and room reserved first (for benchmarks, tests)
        self.reserved = 0
        self.refusals = 0  # Relay calls the coordinator refused with a retry-after, resent

    @property
    def address(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Listen on the socket (only this user may connect) and start forwarding."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path.unlink(missing_ok=True)
        # One thread per waiting rank call: a node's ranks, their DataLoader workers, and
        # room for retries; the calls only wait on the forwarder.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=64,
                                                              thread_name_prefix="slsa-relay"),
                                   options=wire.SERVER_OPTIONS)
        pb_grpc.add_CollectorServicer_to_server(_RelayServicer(self), self._server)
        self._server.add_insecure_port(self.address)
        self._server.start()
        os.chmod(self.socket_path, 0o600)
        self._thread = threading.Thread(target=self._forward, name="slsa-relay-forward",
                                        daemon=True)
        self._thread.start()
        return self.address

    def close(self, grace: float = 5.0) -> None:
        """Finish what is queued (up to ``grace`` seconds), then stop serving."""
        deadline = time.monotonic() + grace
        with self._cond:
            while self._queue and time.monotonic() < deadline:
                self._cond.wait(0.05)
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(max(0.0, deadline - time.monotonic())).wait()
        if self._thread is not None:
            self._thread.join(5)
        self.socket_path.unlink(missing_ok=True)

    # -- the calls ranks make ----------------------------------------------------------

    def call(self, item: pb.RelayItem, timeout: float | None) -> _Call:
        """Queue one item and wait for its result (or the Relay call's failure)."""
        call = _Call(item)
        with self._cond:
            if self._closing:
                call.failure = (grpc.StatusCode.UNAVAILABLE, "node relay: closing", False, None)
                return call
            self._queue.append(call)
            if len(self._queue) == 1 or len(self._queue) >= self._batch_max:
                self._cond.notify_all()
        if not call.done.wait(timeout if timeout is not None else self._timeout):
            call.failure = (grpc.StatusCode.DEADLINE_EXCEEDED,
                            "node relay: no answer from the coordinator in time", False, None)
        return call

    # -- the forwarder -------------------------------------------------------------------

    def _forward(self) -> None:
        channel = wire.open_channel(self.coordinator, credentials=self._credentials)
        stub = pb_grpc.CollectorStub(channel)
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue and self._closing:
                        return
                    if len(self._queue) < self._batch_max:
                        self._cond.wait(self._interval)  # gather a batch
                    batch = [self._queue.popleft()
                             for _ in range(min(len(self._queue), self._batch_max))]
                    self._cond.notify_all()
                self._send(stub, batch)
        finally:
            channel.close()

    def _reserve(self, stub: pb_grpc.CollectorStub, request: pb.RelayRequest) -> None:
        """Wait for the coordinator to have room for ``request`` when it is large. A
        coordinator without Reserve (older) is not asked again; any other failure
        sends the call anyway (the coordinator then refuses it if it must)."""
        if self._reserve_above is None:
            return
        size = request.ByteSize()
        if size < self._reserve_above:
            return
        try:
            stub.Reserve(pb.ReserveRequest(job_id=self.job_id, node_id=self.node_id,
                                           bytes=size), timeout=self._timeout)
            self.reserved += 1
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._reserve_above = None

    def _send(self, stub: pb_grpc.CollectorStub, batch: list[_Call]) -> None:
        request = pb.RelayRequest(job_id=self.job_id, node_id=self.node_id,
                                  items=[c.item for c in batch])
        # A coordinator under load refuses before doing anything, and says when to come
        # back: the relay waits that long (with jitter) and sends again, for up to half
        # its deadline (the ranks wait meanwhile: the node's back-pressure); past that,
        # the ranks are told, and their agents wait as told.
        patience = time.monotonic() + self._timeout / 2
        while True:
            try:
                self._reserve(stub, request)
                reply = stub.Relay(request, timeout=self._timeout)
                self.forwarded += 1
                break
            except grpc.RpcError as exc:
                after = wire.retry_after(exc)
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and after is not None:
                    delay = retry_delay(max(after, 0.05))
                    if time.monotonic() + delay < patience and not self._closing:
                        self.refusals += 1
                        time.sleep(delay)
                        continue
                # The ranks' agents retry on their own, with jitter: the relay keeps nothing.
                failure = (exc.code(), exc.details() or "", wire.wants_resync(exc), after)
                for call in batch:
                    call.failure = failure
                    call.done.set()
                return
        if len(reply.results) != len(batch):
            failure = (grpc.StatusCode.INTERNAL, f"relay: expected {len(batch)} results, "
                       f"found {len(reply.results)}", False, None)
            for call in batch:
                call.failure = failure
                call.done.set()
            return
        for call, result in zip(batch, reply.results, strict=True):
            call.result = result
            call.done.set()


class _RelayServicer(pb_grpc.CollectorServicer):  # type: ignore[misc]  # generated base
    """``RegisterRank`` and ``Report`` for the node's ranks, answered as the coordinator
    answered them."""

    def __init__(self, relay: NodeRelay) -> None:
        self._relay = relay

    def _answer(self, call: _Call, context: grpc.ServicerContext) -> Any:
        if call.failure is not None:
            code, detail, resync, after = call.failure
            if resync:
                context.set_trailing_metadata(((wire.RESYNC_KEY, "1"),))
            elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # the coordinator is loaded
                context.set_trailing_metadata(wire.retry_after_trailer(
                    round(1000 * after) if after is not None else wire.RETRY_AFTER_MS))
            context.abort(code, detail)
        result = call.result
        assert result is not None
        if result.code:
            if result.resync:
                context.set_trailing_metadata(((wire.RESYNC_KEY, "1"),))
            context.abort(_STATUS[result.code], result.detail)
        return result.registered if result.WhichOneof("reply") == "registered" \
            else result.reported

    def RegisterRank(self, request: pb.RegisterRankRequest,  # noqa: N802 -- gRPC's names
                     context: grpc.ServicerContext) -> pb.RegisterResponse:
        if request.node_id != self._relay.node_id:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"node relay: expected ranks of node {self._relay.node_id!r}, found "
                          f"a rank of node {request.node_id!r}")
        reply: pb.RegisterResponse = self._answer(
            self._relay.call(pb.RelayItem(register=request), context.time_remaining()), context)
        return reply

    def Report(self, request: pb.ReportRequest,  # noqa: N802
               context: grpc.ServicerContext) -> pb.ReportResponse:
        reply: pb.ReportResponse = self._answer(
            self._relay.call(pb.RelayItem(report=request), context.time_remaining()), context)
        return reply


_STATUS = {code.value[0]: code for code in grpc.StatusCode}
