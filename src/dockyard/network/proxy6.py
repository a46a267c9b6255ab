"""The userland proxy of published ports on the host's IPv6 loopback, as dockerd 20.10's docker-proxy: the
kernel never routes a packet from `::1` out of the host's loopback (IPv6 has no route_localnet), so DNAT
cannot carry a connection to `[::1]:P` into a bridge. The socket holding such a port (ports.PortHolder)
accepts, and each connection is relayed to the container's IPv6 address by two short threads. Only for TCP
mappings on IPv6 host addresses: IPv4 ones stay kernel DNAT alone."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

log = logging.getLogger(__name__)


def serve(listener: socket.socket, target: tuple[str, int]) -> threading.Thread:
    thread = threading.Thread(target=_accept, args=(listener, target), name="proxy6", daemon=True)
    thread.start()
    return thread


def _accept(listener: socket.socket, target: tuple[str, int]) -> None:
    listener.listen(128)
    while True:
        try:
            client, _peer = listener.accept()
        except OSError:  # the holder closed the socket: the port is released
            return
        threading.Thread(target=_relay_pair, args=(client, target), daemon=True).start()


def _relay_pair(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as e:
        log.debug("proxy6 to [%s]:%s: %s", target[0], target[1], e)
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
