"""A client of containerd's CRI streaming server (the URL the CRI's Exec and Attach answer with), written with the
standard library only: a WebSocket (RFC 6455) connection carrying Kubernetes' channel protocol.

The protocols containerd 1.6's server accepts for exec and attach are "channel.k8s.io" and "base64.channel.k8s.io"
and their "v4." versions. Every message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (the
command's status), 4 resize. In the binary protocols that is one byte before the raw data; in the base64 ones an
ASCII digit before the data in base64, in text frames. With v4 the error channel carries the status as JSON, a
Kubernetes metav1.Status: {"status": "Success"}, or "Failure" with reason "NonZeroExitCode" and the code as the
message of the cause of type "ExitCode".
"""
import base64
import hashlib
import json
import os
import socket
import struct
import urllib.parse

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
STDIN, STDOUT, STDERR, ERROR, RESIZE = range(5)


class Session:
    """One streaming session: connect(url) then send(channel, data) / receive() until None (closed)."""

    def __init__(self, url, protocol, timeout=30):
        self.protocol = protocol
        self.is_base64 = "base64" in protocol
        u = urllib.parse.urlsplit(url)
        assert u.scheme == "http", url
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16))
        path = u.path + (f"?{u.query}" if u.query else "")
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
                          f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "101":
            raise ConnectionError(f"the streaming server refused the upgrade: {head!r}")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise ConnectionError(f"wrong Sec-WebSocket-Accept in {head!r}")
        if headers.get("sec-websocket-protocol") != protocol:
            raise ConnectionError(f"the server chose another protocol: {head!r}")

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the streaming server closed the connection")
        self.buffer += data

    def _take(self, n):
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send_frame(self, opcode, payload):
        """A final frame; a client's frames are masked (RFC 6455, section 5.3)."""
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _receive_frame(self):
        first, second = self._take(2)
        opcode, n = first & 0x0F, second & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        mask = self._take(4) if second & 0x80 else None
        payload = self._take(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), opcode, payload

    def send(self, channel, data):
        if self.is_base64:
            self._send_frame(OP_TEXT, str(channel).encode() + base64.b64encode(data))
        else:
            self._send_frame(OP_BINARY, bytes([channel]) + data)

    def receive(self):
        """The next message as (channel, data), or None once the server closed the session."""
        message = b""
        while True:
            is_final, opcode, payload = self._receive_frame()
            if opcode == OP_CLOSE:
                self._send_frame(OP_CLOSE, payload[:2])
                return None
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                message += payload
                if is_final:
                    break
        if not message:
            return self.receive()  # a frame with no channel byte carries nothing
        if self.is_base64:
            return message[0] - ord("0"), base64.b64decode(message[1:])
        return message[0], message[1:]


def exit_code_of(status):
    """The exit code a v4 status names: 0 for Success, the ExitCode cause's for NonZeroExitCode."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        (cause,) = [c for c in status["details"]["causes"] if c.get("reason") == "ExitCode"]
        return int(cause["message"])
    raise AssertionError(f"the command failed: {status}")


def run(url, protocol="v4.channel.k8s.io", stdin=b"", timeout=30):
    """Run a session to its end: write STDIN once the server says it is ready (its first, empty, message), collect
    stdout and stderr; returns (stdout, stderr, status) with status the error channel's JSON (v4)."""
    s = Session(url, protocol, timeout)
    out = {STDOUT: b"", STDERR: b"", ERROR: b""}
    sent = False
    try:
        while (message := s.receive()) is not None:
            channel, data = message
            out[channel] = out.get(channel, b"") + data
            if not sent and stdin:
                s.send(STDIN, stdin)
                sent = True
    finally:
        s.close()
    return out[STDOUT], out[STDERR], json.loads(out[ERROR]) if out[ERROR] else None
