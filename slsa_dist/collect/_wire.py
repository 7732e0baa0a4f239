"""The transport rules both ends of the collector protocol share, in one place.

* **Channels.** :func:`open_channel` is how every client (agent, ``slsa-dist
  finalize``) reaches a coordinator: mutual TLS with a job-CA certificate, or
  plaintext on loopback only (:func:`require_tls_or_loopback`).
* **Limits.** :data:`MAX_MESSAGE_BYTES` caps every message both ways.
* **Resync.** A refusal that registering again cures carries the
  :data:`RESYNC_KEY` trailer (:func:`resync_trailer`, :func:`wants_resync`).
* **Status codes.** :func:`status_of` maps the errors of
  :mod:`slsa_dist.errors` to gRPC status codes; the servicer calls nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

import grpc

from slsa_dist.errors import InputError, SenderError

__all__ = ["CHANNEL_OPTIONS", "MAX_MESSAGE_BYTES", "PACE_KEY", "RESYNC_KEY", "SERVER_OPTIONS",
           "check_listen", "check_port_free", "is_loopback", "open_channel", "pace",
           "pace_trailer", "peer_is_loopback",
           "require_tls_or_loopback", "resync_trailer", "retry_after", "retry_after_trailer",
           "status_of", "varint", "wants_resync", "wire_field"]

# gRPC message size cap: a full batch (10,000 events) of typical events is
# ~1 MiB; 8 MiB leaves room for evidence blobs while bounding memory per RPC.
MAX_MESSAGE_BYTES = 8 << 20
# Trailing metadata on a refusal that registering again cures (SenderError.resync).
RESYNC_KEY = "slsa-resync"

# Clients retry themselves (the agent's spool and sequence numbers make resending
# safe); gRPC's transparent retries would only hide how often that happens.
# After a partition heals, a channel reconnects within 2 s: gRPC's default backoff
# grows to 120 s, so a link back after 20 s could wait another 10 s or more.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
# One coordinator per port: a second one on the same port must fail to bind.
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
)


def is_loopback(address: str) -> bool:
    """True when ``host:port`` names a loopback interface, or ``address`` is a Unix
    socket (``unix:PATH``: local to this host by construction)."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(address: str) -> None:
    """``HOST:PORT`` with an explicit port (0 picks one); gRPC would take a bare host
    as port 443 without a word.

    Raises:
        InputError: no port, or one that is not a number in 0..65535.
    """
    host, colon, port = address.rpartition(":")
    unbracketed_ipv6 = ":" in host and not (host.startswith("[") and host.endswith("]"))
    if not colon or not host or unbracketed_ipv6 or not port.isdigit() or int(port) > 65535:
        raise InputError(f"listen: expected HOST:PORT (port 0 picks a free one; IPv6 as "
                         f"[::1]:PORT), found {address!r}")


def check_port_free(address: str) -> None:
    """Fail with one line before gRPC logs its own bind error (a second coordinator on
    the port). A port freed in between is still caught by the bind itself.

    Raises:
        InputError: the port is taken.
    """
    host, _, port = address.rpartition(":")
    if int(port) == 0:
        return
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    name = host.strip("[]")
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as gRPC binds: connections of a coordinator that just died (TIME_WAIT) do not
        # hold the port, a listening coordinator does
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("" if name in ("0.0.0.0", "::") else name, int(port)))  # noqa: S104 -- a probe
        except OSError as exc:
            raise InputError(f"listen: expected a free port to bind at {address!r}, found it "
                             f"in use or not bindable ({exc.strerror}; another "
                             "coordinator?)") from None


def peer_is_loopback(peer: str) -> bool:
    """A gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``) on loopback."""
    kind, _, rest = peer.partition(":")
    return kind in ("ipv4", "ipv6") and is_loopback(rest)


def peer_host(peer: str) -> str:
    """The address of a gRPC peer string (``ipv4:10.0.0.5:5000`` -> ``10.0.0.5``); ''
    for a peer that is not on IP (a Unix socket)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return ""
    return rest.rsplit(":", 1)[0].strip("[]")


def require_tls_or_loopback(address: str, *, tls: bool, what: str = "coordinator") -> None:
    """The one loopback rule: plaintext only where nothing leaves the host.

    Raises:
        InputError: plaintext asked for on an address that is not loopback.
    """
    if not tls and not is_loopback(address):
        raise InputError(f"{what}: plaintext is allowed on loopback only; expected "
                         f"127.0.0.1/::1/localhost or TLS, found {address!r}")


def open_channel(address: str, *, credentials: grpc.ChannelCredentials | None = None,
                 tls_dir: str | os.PathLike[str] | None = None) -> grpc.Channel:
    """A channel to a coordinator: TLS with ``credentials`` or a certificate
    directory (``cert.pem``, ``key.pem``, ``ca.pem``), else plaintext on loopback.

    Raises:
        InputError: plaintext to an address that is not loopback, or a bad TLS directory.
    """
    if credentials is None and tls_dir is not None:
        from slsa_dist.sign._ca import channel_credentials

        credentials = channel_credentials(tls_dir)
    require_tls_or_loopback(address, tls=credentials is not None)
    if credentials is None:
        return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and detail for an error a handler raised.

    :class:`SenderError` carries its own code (who is at fault is the sender);
    :class:`InputError` is the sender's too; a failed journal is ours, and
    retrying later may succeed (``UNAVAILABLE``).
    """
    from slsa_dist.collect._journal import JournalFailed

    if isinstance(exc, SenderError):
        return getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
    if isinstance(exc, JournalFailed):
        return grpc.StatusCode.UNAVAILABLE, f"{exc}; not acknowledged, keep it spooled and retry"
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    raise TypeError(f"no gRPC status for {type(exc).__name__}") from exc


def resync_trailer(exc: SenderError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for a refusal: the resync mark when registering again cures it."""
    return ((RESYNC_KEY, "1"),) if exc.resync else ()


RETRY_AFTER_KEY = "retry-after-ms"
# What a refused caller is told to wait when nothing better is known (it adds jitter).
RETRY_AFTER_MS = 200


def retry_after_trailer(milliseconds: int) -> tuple[tuple[str, str], ...]:
    """Trailing metadata on a RESOURCE_EXHAUSTED refusal: when to try again."""
    return ((RETRY_AFTER_KEY, str(milliseconds)),)


def _trailer(exc: grpc.RpcError, key: str) -> str | None:
    """The value of trailing metadata ``key`` on a refusal, or None (the metadata of a
    blocking call and of an asyncio call alike: both are (key, value) pairs)."""
    # Typed as _Metadatum items with .key and .value; at run time both are tuples.
    trailing: Any = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return next((str(value) for name, value in trailing or () if name == key), None)


def retry_after(exc: grpc.RpcError) -> float | None:
    """Seconds the coordinator asked a refused caller to wait, or None."""
    value = _trailer(exc, RETRY_AFTER_KEY)
    return int(value) / 1000 if value is not None and value.isdigit() else None


PACE_KEY = "pace-ms"


def pace_trailer(milliseconds: int) -> tuple[tuple[str, str], ...]:
    """Trailing metadata on an answered call of a loaded coordinator: how long the
    caller should wait before its next call (it adds jitter, as to a retry-after)."""
    return ((PACE_KEY, str(milliseconds)),)


def pace(trailing: Any) -> float | None:
    """Seconds an answered call's trailing metadata (its (key, value) pairs) asks the
    caller to wait before the next one, or None."""
    value = next((str(v) for k, v in trailing or () if k == PACE_KEY), None)
    return int(value) / 1000 if value is not None and value.isdigit() else None


def wants_resync(exc: grpc.RpcError) -> bool:
    """True when the coordinator marked this refusal as cured by registering again."""
    return _trailer(exc, RESYNC_KEY) is not None


def varint(value: int) -> bytes:
    """A protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def wire_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2) holding ``payload``: appended to a
    message's bytes it sets (or, for a repeated or message field, adds to) that field,
    without parsing the message again."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload
