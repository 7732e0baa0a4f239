"""Collect: agents report events over gRPC; one coordinator journals and merges them.

Public: :class:`Coordinator` (the ``grpc.aio`` service), its :class:`CoordinatorConfig`,
and :class:`CoordinatorThread` (a coordinator in a thread, as the Ray callback runs
one). Private modules: ``_agent`` (rank and node agents: queue, batch, spool, retry,
never block), ``_spool``, ``_wire`` (transport rules both ends share), ``_relay`` (a
node's relay), ``_coordinator``, ``_merge`` (the pure state machine from accepted
events to ONE Statement: ``_ingest`` authorizes, ``_state`` applies, ``_assemble``
builds the records and the Statement), ``_journal`` (durable before acknowledged), ``_node`` (the
per-node agent), ``_upload``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slsa_dist._internal.lazy import exports

if TYPE_CHECKING:
    from slsa_dist.collect._coordinator import Coordinator, CoordinatorConfig, CoordinatorThread

__all__ = ["Coordinator", "CoordinatorConfig", "CoordinatorThread"]

__getattr__ = exports(__name__, {
    "Coordinator": "_coordinator",
    "CoordinatorConfig": "_coordinator",
    "CoordinatorThread": "_coordinator",
})
