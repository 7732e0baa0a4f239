"""The transport rules in one place: loopback, channels, resync, status codes."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio
from grpc._cython import cygrpc

from slsa_dist.collect import _wire as wire
from slsa_dist.collect._journal import JournalFailed
from slsa_dist.errors import InputError, SenderError, VerificationError


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:5000", True), ("127.8.9.10:1", True), ("[::1]:5000", True),
    ("localhost:1", True), ("10.1.2.3:5000", False), ("example.org:443", False),
    ("[2001:db8::1]:5000", False)])
def test_the_loopback_rule(address: str, loopback: bool) -> None:
    assert wire.is_loopback(address) is loopback
    if loopback:
        wire.require_tls_or_loopback(address, tls=False)
    else:
        with pytest.raises(InputError, match="plaintext is allowed on loopback only; expected "
                           r"127.0.0.1/::1/localhost or TLS, found"):
            wire.require_tls_or_loopback(address, tls=False)
    wire.require_tls_or_loopback(address, tls=True)  # TLS goes anywhere


def test_a_plaintext_channel_to_another_host_is_refused_before_it_opens() -> None:
    with pytest.raises(InputError, match="found '10.0.0.1:50051'"):
        wire.open_channel("10.0.0.1:50051")
    wire.open_channel("127.0.0.1:1").close()


@pytest.mark.parametrize(("error", "code"), [
    (SenderError("x", code="NOT_FOUND"), grpc.StatusCode.NOT_FOUND),
    (SenderError("x", code="NO_SUCH_CODE"), grpc.StatusCode.INVALID_ARGUMENT),
    (InputError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (JournalFailed("disk full"), grpc.StatusCode.UNAVAILABLE)])
def test_errors_map_to_one_status_each(error: Exception, code: grpc.StatusCode) -> None:
    assert wire.status_of(error)[0] == code


def test_an_error_without_a_status_is_a_bug_not_a_refusal() -> None:
    with pytest.raises(TypeError):
        wire.status_of(VerificationError("x"))


def test_only_a_resync_refusal_carries_the_trailer() -> None:
    assert wire.resync_trailer(SenderError("x", resync=True)) == ((wire.RESYNC_KEY, "1"),)
    assert wire.resync_trailer(SenderError("x")) == ()


@pytest.mark.parametrize("address", ["127.0.0.1", "[::1]", "::1:5", "host:http", "h:70000",
                                     ":5000"])
def test_a_listen_address_without_a_usable_port_is_refused(address: str) -> None:
    with pytest.raises(InputError, match=r"listen: expected HOST:PORT \(port 0 picks a free "
                       r"one; IPv6 as \[::1\]:PORT\), found"):
        wire.check_listen(address)


@pytest.mark.parametrize("address", ["127.0.0.1:0", "0.0.0.0:50051", "[::1]:5000",
                                     "coordinator.svc:443"])
def test_a_listen_address_with_a_port_is_accepted(address: str) -> None:
    wire.check_listen(address)


class _Refused(grpc.RpcError):
    def __init__(self, trailing: object) -> None:
        self._trailing = trailing

    def trailing_metadata(self) -> object:
        return self._trailing


def test_retry_after_reads_blocking_and_asyncio_metadata_alike() -> None:
    """A blocking call's trailer items have .key/.value; an asyncio call's are plain pairs
    (aio.Metadata): the relay's and the benchmark's asyncio clients read it too."""
    blocking = (cygrpc._Metadatum(wire.RETRY_AFTER_KEY, "200"),)  # as grpc's channel gives
    assert blocking[0].key == wire.RETRY_AFTER_KEY
    assert wire.retry_after(_Refused(blocking)) == 0.2
    assert wire.retry_after(_Refused(aio.Metadata((wire.RETRY_AFTER_KEY, "350")))) == 0.35
    assert wire.retry_after(_Refused(aio.Metadata(("other", "1")))) is None
