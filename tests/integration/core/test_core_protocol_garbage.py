"""Bad input from a client: that client gets an error (08P01, or 0A000 for
a protocol version) and is closed with a log line; everyone else goes on."""
import socket
import struct

import pytest

from wire import Wire, error_fields, msg, startup_packet


@pytest.fixture
def busy(sluice):
    """A pooler and one client that must stay unaffected."""
    s = sluice()
    c = s.connect()
    c.execute("select 1")
    yield s, c
    assert c.execute("select 'still fine'").fetchone() == ("still fine",)
    assert s.proc.poll() is None
    c.close()


def raw_error(port, payload):
    w = Wire(port)
    w.send(payload)
    t, body = w.read_msg(timeout=5)
    assert t == b"E"
    assert w.closed_within(3)
    return error_fields(body)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    struct.pack("!I", 0) + b"\0\0\0\0",
    struct.pack("!I", 2 ** 31) + b"\0\0\0\0",
    struct.pack("!I", 4) + b"\0\0\0\0",
])
def test_garbage_startup(busy, payload):
    s, _ = busy
    f = raw_error(s.port, payload)
    assert f["C"] == "08P01"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("version", [(2 << 16), (9 << 16) | 9])
def test_bad_protocol_version(busy, version):
    s, _ = busy
    f = raw_error(s.port, startup_packet("app", "appdb", version=version))
    assert f["C"] in ("08P01", "0A000")


@pytest.mark.timeout(30)
def test_truncated_startup_then_close(busy):
    s, _ = busy
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(startup_packet("app", "appdb")[:11])
    sock.close()


@pytest.mark.timeout(30)
def test_ssl_request_refused_then_plain_login(busy):
    s, _ = busy
    w = Wire(s.port)
    w.send(struct.pack("!II", 8, 80877103))
    assert w.read_byte() == b"N"
    w.login("app", "appdb")
    w.close()


@pytest.mark.timeout(30)
def test_gssenc_request_refused(busy):
    s, _ = busy
    w = Wire(s.port)
    w.send(struct.pack("!II", 8, 80877104))
    assert w.read_byte() == b"N"
    w.login("app", "appdb")
    w.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("payload", [
    b"Q" + struct.pack("!I", 2 ** 31),
    msg(b"!", b""),
    b"S" + struct.pack("!I", 5) + b"\0",
    b"Q" + struct.pack("!I", 2),
])
def test_garbage_after_login(busy, payload):
    s, _ = busy
    w = Wire(s.port).login("app", "appdb")
    w.send(payload)
    t, body = w.read_msg(timeout=5)
    assert t == b"E"
    assert error_fields(body)["C"] == "08P01"
    assert w.closed_within(3)
    assert "protocol violation" in s.log() or "invalid" in s.log()


@pytest.mark.timeout(30)
def test_garbage_mid_transaction_releases_server(busy, pg):
    s, _ = busy
    w = Wire(s.port).login("app", "appdb")
    w.simple("begin")
    w.simple("select 1")
    w.send(msg(b"!", b""))
    w.read_msg(timeout=5)
    assert w.closed_within(3)
    import time
    time.sleep(0.5)
    assert not [b for b in pg.backends(user="app") if b[3] == "idle in transaction"]


@pytest.mark.timeout(30)
def test_startup_without_user(busy):
    s, _ = busy
    body = struct.pack("!I", 196608) + b"database\0appdb\0\0"
    f = raw_error(s.port, struct.pack("!I", len(body) + 4) + body)
    assert f["C"] == "28000"
