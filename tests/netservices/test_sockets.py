"""Listening sockets and their bind errors."""

import socket

import pytest

from netservices.sockets import BindError, listen


@pytest.mark.parametrize("kind,host", [("tcp", "127.0.0.1"), ("udp", "127.0.0.1"), ("tcp", "::1"), ("udp", "::1")])
def test_listen_then_bind_again_fails_naming_the_address(kind, host):
    sock = listen(kind, host, 0)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(BindError) as err:
            listen(kind, host, port)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        assert str(err.value) == f"cannot listen on {kind} {where}: Address already in use"
        assert err.value.errno == 98
    finally:
        sock.close()


def test_address_not_on_this_machine():
    with pytest.raises(BindError, match="cannot listen on tcp 192.0.2.1:8000: Cannot assign requested address"):
        listen("tcp", "192.0.2.1", 8000)


def test_tcp_socket_accepts():
    sock = listen("tcp", "127.0.0.1", 0)
    with sock, socket.create_connection(sock.getsockname(), timeout=2):
        pass
