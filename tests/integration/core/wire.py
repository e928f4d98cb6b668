"""Raw PostgreSQL v3 protocol over a socket, for tests that must send what
no driver would (garbage, abandoned pipelines) or read exact responses."""
import socket
import struct
import time


def startup_packet(user, database, version=196608, **params):
    body = struct.pack("!I", version)
    for k, v in [("user", user), ("database", database)] + list(params.items()):
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(t, payload=b""):
    return t + struct.pack("!I", len(payload) + 4) + payload


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


def cancel_packet(pid, key):
    return struct.pack("!IIII", 16, 80877102, pid, key)


class Wire:
    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.pid = self.key = None
        self.params = {}

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.time()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by peer")
        self.buf += chunk

    def read_msg(self, timeout=10):
        deadline = time.time() + timeout
        while len(self.buf) < 5:
            self._fill(deadline)
        t = self.buf[:1]
        n = struct.unpack("!I", self.buf[1:5])[0]
        while len(self.buf) < n + 1:
            self._fill(deadline)
        body = self.buf[5:n + 1]
        self.buf = self.buf[n + 1:]
        return t, body

    def read_byte(self, timeout=10):
        deadline = time.time() + timeout
        while len(self.buf) < 1:
            self._fill(deadline)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_until(self, types, timeout=10):
        """Messages up to and including the first whose type is in types."""
        out = []
        while True:
            t, body = self.read_msg(timeout)
            out.append((t, body))
            if t in types:
                return out

    def login(self, user, database, **params):
        self.send(startup_packet(user, database, **params))
        for t, body in self.read_until((b"Z", b"E")):
            if t == b"K":
                self.pid, self.key = struct.unpack("!II", body)
            elif t == b"S":
                k, v, _ = body.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif t == b"E":
                raise RuntimeError(error_fields(body))
        return self

    def simple(self, sql, timeout=10):
        self.send(query(sql))
        return self.read_until((b"Z",), timeout)

    def closed_within(self, timeout):
        """True if the peer closes the connection within timeout seconds."""
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self._fill(deadline)
        except (ConnectionError, OSError):
            return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def error_fields(body):
    f = {}
    for part in body.split(b"\0"):
        if part:
            f[part[:1].decode()] = part[1:].decode(errors="replace")
    return f


def rows(messages):
    out = []
    for t, body in messages:
        if t == b"D":
            n = struct.unpack("!H", body[:2])[0]
            pos, row = 2, []
            for _ in range(n):
                ln = struct.unpack("!i", body[pos:pos + 4])[0]
                pos += 4
                if ln < 0:
                    row.append(None)
                else:
                    row.append(body[pos:pos + ln].decode())
                    pos += ln
            out.append(tuple(row))
    return out
