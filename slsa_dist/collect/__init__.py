"""Collect: agents report events over gRPC; one coordinator journals and merges them.

* :mod:`.agent` -- rank and node agents: queue, batch, spool, retry, never block.
* :mod:`.spool` -- the agent's on-disk spool format.
* :mod:`.wire` -- the transport rules both ends share: channels, the loopback
  rule, message limits, the resync trailer, error codes to gRPC status.
* :mod:`.coordinator` -- the ``grpc.aio`` service and :class:`~.coordinator.CoordinatorThread`.
* :mod:`.merge` -- the pure state machine from accepted events to ONE Statement.
* :mod:`.journal` -- durable before acknowledged (SQLite WAL, group commit).
* :mod:`.node` -- the per-node agent a launcher starts (inventory, evidence, attempts).
"""
