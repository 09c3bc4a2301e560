"""Does a Ray head answer at HOST:PORT? One gRPC call, by hand, with a deadline.

``ray.init(address=...)`` waits without end on a server that accepts HTTP/2 and then stays
silent, and retries for about 20 s against one that speaks HTTP/2 but is no Ray head. Before
joining we open the connection ourselves, ask the Ray GCS for its cluster id (an empty request,
``NodeInfoGcsService/GetClusterId``) and wait at most a few seconds for a reply's headers: a GCS
answers (even one that refuses us for want of Ray's token answers with a status); anything else
is refused in one line. No gRPC library is needed: a request is two HTTP/2 frames.

Example (the request's first frame is SETTINGS, empty):
    >>> frame(4, 0, b"")
    b'\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x00\\x00'
"""

from __future__ import annotations

import socket
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, HEADERS, DATA, GOAWAY = 4, 1, 0, 7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def frame(kind: int, flags: int, payload: bytes, *, stream: int = 0) -> bytes:
    """One HTTP/2 frame: 3-byte length, type, flags, 4-byte stream id, payload."""
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def literal_header(name: str, value: str) -> bytes:
    """An HPACK "literal without indexing, new name" field (no Huffman); names and values
    here are under 127 bytes, so each length is one byte.

    >>> literal_header("te", "trailers")
    b'\\x00\\x02te\\x08trailers'
    """
    raw_name, raw_value = name.encode(), value.encode()
    if max(len(raw_name), len(raw_value)) > 126:
        raise ValueError(f"header {name!r} is too long for a one-byte HPACK length")
    return b"\x00" + bytes([len(raw_name)]) + raw_name + bytes([len(raw_value)]) + raw_value


def gcs_request(authority: str) -> bytes:
    """The client's bytes: preface, SETTINGS, and an empty unary call on stream 1."""
    headers = b"".join(literal_header(name, value) for name, value in [
        (":method", "POST"), (":scheme", "http"), (":path", GCS_METHOD), (":authority", authority[:126]),
        ("content-type", "application/grpc"), ("te", "trailers")])
    empty_message = b"\x00" + (0).to_bytes(4, "big")  # gRPC: not compressed, length 0
    return (PREFACE + frame(SETTINGS, 0, b"") + frame(HEADERS, END_HEADERS, headers, stream=1)
            + frame(DATA, END_STREAM, empty_message, stream=1))


def probe(host: str, port: int, *, timeout_s: float) -> str:
    """'' when a gRPC server replies to the call within ``timeout_s``; otherwise why not.
    Connection errors (nothing listens, unroutable host) raise OSError."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection((host, port), timeout=timeout_s) as conn:
        conn.sendall(gcs_request(f"{host}:{port}"))
        silent = f"it accepted the connection but did not answer a Ray call within {timeout_s:g} s"
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            try:
                head = _read_exactly(conn, 9)
            except TimeoutError:
                return silent
            if head is None:
                return "it closed the connection without answering (not HTTP/2 gRPC)"
            length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
            if length > 1 << 20 or _read_exactly(conn, length) is None:
                return "its reply is not HTTP/2"
            if kind == SETTINGS and not flags & ACK:
                conn.sendall(frame(SETTINGS, ACK, b""))
            elif kind == HEADERS and int.from_bytes(head[5:9], "big") & 0x7FFFFFFF == 1:
                return ""
            elif kind == GOAWAY:
                return "it refused the gRPC call (HTTP/2 GOAWAY)"
        return silent


def _read_exactly(conn: socket.socket, count: int) -> bytes | None:
    """``count`` bytes, or None when the peer closed first; TimeoutError past the socket's timeout."""
    chunks, left = [], count
    while left:
        chunk = conn.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
