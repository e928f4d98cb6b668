"""Malformed protocol from clients (raw sockets): the offending connection
is refused or closed, with ErrorResponse 08P01 where the protocol allows
one, and nobody else notices: the pooler stays up, a client connected
before keeps working and a new client runs select 1."""
import random
import socket
import struct
import time

import pytest

import pgwire
from helpers import assert_healthy, clients_listed, wait_until


@pytest.fixture
def garbage_target(sluice):
    """A pooler plus a bystander client logged in before the garbage; at
    the end both the bystander and a fresh client must still work."""
    s = sluice({"client_login_timeout": 5})
    bystander = pgwire.connect(s.port)
    assert bystander.query_ok("select 1").rows == [("1",)]
    yield s
    try:
        assert s.alive(), "pgsluice died:\n" + s.log_tail()
        assert bystander.query_ok("select 'bystander ok'").rows == [("bystander ok",)]
        assert_healthy(s)
    finally:
        bystander.close()


def raw(s):
    return pgwire.Conn.open(s.port)


def read_until_closed(c, timeout=5.0):
    """All bytes until the peer closes (TimeoutError if it does not)."""
    data = bytearray(c.buf)
    c.buf.clear()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connection still open after {timeout}s (got {bytes(data[:200])!r})")
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def first_error(data):
    """Parse data as v3 messages; the first ErrorResponse's fields or None."""
    pos = 0
    while pos + 5 <= len(data):
        t = chr(data[pos])
        n = struct.unpack("!I", data[pos + 1:pos + 5])[0]
        if n < 4 or pos + 1 + n > len(data):
            return None
        if t == "E":
            return pgwire.parse_error(data[pos + 5:pos + 1 + n])
        pos += 1 + n
    return None


def assert_closed_maybe_with_error(c, codes=("08P01",), timeout=5.0):
    """The pooler closes; if it says anything, it is an ErrorResponse with
    one of codes."""
    data = read_until_closed(c, timeout)
    if data:
        err = first_error(data)
        assert err is not None and data[:1] == b"E", f"unexpected bytes before close: {data[:200]!r}"
        assert err["C"] in codes, err


def assert_error_then_closed(c, codes=("08P01",), timeout=5.0):
    data = read_until_closed(c, timeout)
    err = first_error(data)
    assert err is not None, f"no ErrorResponse before the close: {data[:200]!r}"
    assert err["C"] in codes, err
    return err


def assert_truncated_startup_waits(s, c, others=1):
    """A client that sent part of a startup packet sees nothing (no
    error, no close: the pooler waits for the rest) and is one of the
    pooler's clients besides the others already there."""
    with pytest.raises(TimeoutError):
        c.recv_bytes(1, timeout=0.3)
    assert wait_until(lambda: len(clients_listed(s)) == others + 1, timeout=3), clients_listed(s)


def assert_half_logins_forgotten(s, others=1):
    """Once the truncated clients have gone, the pooler lists only the
    others (the bystander): nothing is left of the half-done logins."""
    assert wait_until(lambda: len(clients_listed(s)) == others, timeout=5), clients_listed(s)


# ---------------------------------------------------------------- before login

@pytest.mark.timeout(30)
@pytest.mark.parametrize("blob", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS ClientHello
    b"\x00\x00\x00\x00",                                                # length 0
    b"\x00\x00\x00\x07\x00\x03\x00",                                    # length below the minimum
    struct.pack("!II", 2 ** 31, 196608) + b"user\x00app\x00",          # length 2^31
    struct.pack("!II", 0xFFFFFFFF, 196608),                            # length 2^32-1
], ids=["http", "tls_hello", "len0", "len7", "len2pow31", "len_max"])
def test_garbage_startup(garbage_target, blob):
    s = garbage_target
    c = raw(s)
    try:
        c.send(blob)
        t0 = time.monotonic()
        assert_closed_maybe_with_error(c, timeout=5)
        assert time.monotonic() - t0 < 4, "the pooler waited for the rest of an impossible packet"
    finally:
        c.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cut", [3, 10, 20])
def test_truncated_startup_then_close(garbage_target, cut):
    s = garbage_target
    pkt = pgwire.startup_packet({"user": "app", "database": "appdb"})
    for i in range(10):
        c = raw(s)
        c.send(pkt[:cut])
        if i == 0:
            assert_truncated_startup_waits(s, c)
        c.close_abruptly("rst" if cut == 20 else "fin")
    assert_half_logins_forgotten(s)
    assert_healthy(s)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("version", [(2, 0), (9, 9), (1, 0)], ids=["2.0", "9.9", "1.0"])
def test_unsupported_protocol_version(garbage_target, version):
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.startup_packet({"user": "app", "database": "appdb"},
                                     version=(version[0] << 16) | version[1]))
        data = read_until_closed(c, 5)
        assert data[:1] == b"E", f"no error before close: {data[:200]!r}"
        err = first_error(data)
        if err is None and version == (2, 0):
            # a v2-format error ('E' + text) is what PostgreSQL itself sends a 2.0 client
            assert b"protocol" in data.lower(), data
        else:
            assert err is not None, data
            assert err["C"] in ("08P01", "0A000"), err
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_minor_protocol_version_is_negotiated_down(garbage_target):
    """3.1 with a _pq_ option: PostgreSQL answers NegotiateProtocolVersion
    and goes on; so must the pooler (pgwire ignores the 'v' message)."""
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.startup_packet({"user": "app", "database": "appdb", "_pq_.sluice_test": "1"},
                                     version=(3 << 16) | 1))
        c.finish_login("app")
        assert c.query_ok("select 'negotiated'").rows == [("negotiated",)]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_ssl_request_then_plain_startup(garbage_target):
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.ssl_request())
        assert c.recv_bytes(1) == b"N"
        c.startup("app", "appdb")
        assert c.query_ok("select 'after N'").rows == [("after N",)]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_gssenc_request_then_plain_startup(garbage_target):
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.gssenc_request())
        assert c.recv_bytes(1) == b"N"
        c.startup("app", "appdb")
        assert c.query_ok("select 'after gss N'").rows == [("after gss N",)]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_gssenc_then_ssl_then_startup(garbage_target):
    """libpq's order with gssencmode=prefer and sslmode=prefer."""
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.gssenc_request())
        assert c.recv_bytes(1) == b"N"
        c.send(pgwire.ssl_request())
        assert c.recv_bytes(1) == b"N"
        c.startup("app", "appdb")
        assert c.query_ok("select 2").rows == [("2",)]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_startup_without_user(garbage_target):
    s = garbage_target
    c = raw(s)
    try:
        c.send(pgwire.startup_packet({"database": "appdb"}))
        assert_error_then_closed(c, codes=("28000", "08P01"))
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_startup_with_unterminated_parameters(garbage_target):
    s = garbage_target
    c = raw(s)
    try:
        body = struct.pack("!I", 196608) + b"user\x00app\x00database\x00appdb"  # no final NULs
        c.send(pgwire.packet(body))
        assert_closed_maybe_with_error(c)
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_cancel_request_with_random_keys(garbage_target):
    s = garbage_target
    busy = pgwire.connect(s.port)
    try:
        busy.send(pgwire.query("select pg_sleep(0.5), 'not cancelled'"))
        for _ in range(10):
            c = raw(s)
            c.send(pgwire.cancel_request(random.getrandbits(32), random.getrandbits(32)))
            assert read_until_closed(c, 5) == b"", "a CancelRequest got an answer"
            c.close()
        r = busy.read_result(timeout=5)
        assert r.errors == [] and r.rows == [("", "not cancelled")], r
    finally:
        busy.close()


@pytest.mark.timeout(30)
def test_cancel_request_with_wrong_length(garbage_target):
    s = garbage_target
    c = raw(s)
    try:
        c.send(struct.pack("!III", 12, pgwire.CANCEL_CODE, 1234))
        assert_closed_maybe_with_error(c)
    finally:
        c.close()


# ---------------------------------------------------------------- after login

@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
@pytest.mark.parametrize("blob", [
    b"Q" + struct.pack("!I", 2 ** 31) + b"select 1",   # length 2^31
    b"!" + struct.pack("!I", 4),                        # unknown message type
    b"S" + struct.pack("!I", 5) + b"x",                 # Sync must be length 4
    b"Q" + struct.pack("!I", 3),                        # length below 4
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f",                # an SSLRequest after login
], ids=["len2pow31", "unknown_type", "sync_len5", "len3", "late_ssl"])
def test_garbage_after_login(sluice, blob, mode):
    s = sluice({"pool_mode": mode})
    bystander = pgwire.connect(s.port)
    c = pgwire.connect(s.port)
    try:
        assert c.query_ok("select 1").rows == [("1",)]
        c.send(blob)
        t0 = time.monotonic()
        assert_error_then_closed(c, codes=("08P01",), timeout=5)
        assert time.monotonic() - t0 < 4
    finally:
        c.close()
    assert bystander.query_ok("select 'bystander'").rows == [("bystander",)]
    bystander.close()
    assert_healthy(s)


@pytest.mark.timeout(30)
def test_garbage_inside_a_transaction_releases_the_server(sluice, pg):
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 5})
    c = pgwire.connect(s.port)
    try:
        assert c.query_ok("begin; select 1").status == "T"
        c.send(b"!" + struct.pack("!I", 4))
        assert_error_then_closed(c)
    finally:
        c.close()
    with s.connect() as n:  # the only server came back, not in a transaction
        assert n.execute("select 'after garbage'").fetchone() == ("after garbage",)


@pytest.mark.timeout(60)
def test_random_fuzz(sluice):
    """Seeded random blobs before and after login; the pooler must survive
    them all and keep serving."""
    s = sluice({"client_login_timeout": 2})
    rnd = random.Random(20240229)
    types = b"QPBEDSHCXdcfFp!\x00\xff"
    for i in range(150):
        c = raw(s)
        try:
            if i % 2:
                c.startup("app", "appdb")
                blob = bytes([rnd.choice(types)]) + struct.pack("!I", rnd.choice([0, 3, 4, 5, 9, 100, 2 ** 20, 2 ** 31,
                                                                                  rnd.getrandbits(32)]))
                blob += rnd.randbytes(rnd.randint(0, 64))
            else:
                blob = rnd.randbytes(rnd.randint(1, 64))
            c.send(blob)
            try:
                c.sock.settimeout(0.05)
                c.sock.recv(4096)
            except OSError:
                pass
        except OSError:
            pass  # the pooler closed on us first: fine
        finally:
            c.close()
    assert s.alive(), "pgsluice died under fuzz:\n" + s.log_tail()
    assert_healthy(s)


# ---------------------------------------------------------------- default settings, exact answers

@pytest.fixture
def busy(sluice):
    """A pooler with default settings and one psycopg client that must
    stay unaffected."""
    s = sluice()
    c = s.connect()
    c.execute("select 1")
    yield s, c
    assert c.execute("select 'still fine'").fetchone() == ("still fine",)
    assert s.proc.poll() is None
    c.close()


def raw_error(port, payload):
    """Send payload on a new connection: the pooler must answer with one
    ErrorResponse and close within 3 s. Returns the error's fields."""
    w = pgwire.Conn.open(port, timeout=10)
    try:
        w.send(payload)
        t, body = w.recv_msg(timeout=5)
        assert t == "E"
        assert w.is_closed(3)
        return pgwire.parse_error(body)
    finally:
        w.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    struct.pack("!I", 0) + b"\0\0\0\0",
    struct.pack("!I", 2 ** 31) + b"\0\0\0\0",
    struct.pack("!I", 4) + b"\0\0\0\0",
])
def test_garbage_startup_gets_08P01(busy, payload):
    s, _ = busy
    f = raw_error(s.port, payload)
    assert f["C"] == "08P01"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("version", [(2 << 16), (9 << 16) | 9])
def test_bad_protocol_version(busy, version):
    s, _ = busy
    f = raw_error(s.port, pgwire.startup_packet({"user": "app", "database": "appdb"}, version=version))
    assert f["C"] in ("08P01", "0A000")


@pytest.mark.timeout(30)
def test_truncated_startup_then_close_once(busy):
    s, _ = busy
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(pgwire.startup_packet({"user": "app", "database": "appdb"})[:11])
    assert_truncated_startup_waits(s, pgwire.Conn(sock))
    sock.close()
    assert_half_logins_forgotten(s)
    assert_healthy(s)


@pytest.mark.timeout(30)
def test_ssl_request_refused_then_plain_login(busy):
    s, _ = busy
    w = pgwire.Conn.open(s.port, timeout=10)
    w.send(struct.pack("!II", 8, 80877103))
    assert w.recv_bytes(1) == b"N"
    w.startup("app", "appdb", timeout=10)
    w.close()


@pytest.mark.timeout(30)
def test_gssenc_request_refused(busy):
    s, _ = busy
    w = pgwire.Conn.open(s.port, timeout=10)
    w.send(struct.pack("!II", 8, 80877104))
    assert w.recv_bytes(1) == b"N"
    w.startup("app", "appdb", timeout=10)
    w.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("payload", [
    b"Q" + struct.pack("!I", 2 ** 31),
    pgwire.msg(b"!", b""),
    b"S" + struct.pack("!I", 5) + b"\0",
    b"Q" + struct.pack("!I", 2),
])
def test_garbage_after_login_gets_08P01(busy, payload):
    s, _ = busy
    w = pgwire.connect(s.port, timeout=10)
    w.send(payload)
    t, body = w.recv_msg(timeout=5)
    assert t == "E"
    assert pgwire.parse_error(body)["C"] == "08P01"
    assert w.is_closed(3)
    assert "protocol violation" in s.log() or "invalid" in s.log()


@pytest.mark.timeout(30)
def test_garbage_mid_transaction_releases_server(busy, pg):
    s, _ = busy
    w = pgwire.connect(s.port, timeout=10)
    w.query("begin")
    w.query("select 1")
    w.send(pgwire.msg(b"!", b""))
    w.recv_msg(timeout=5)
    assert w.is_closed(3)
    time.sleep(0.5)
    assert not [b for b in pg.backends(user="app") if b.state == "idle in transaction"]


@pytest.mark.timeout(30)
def test_startup_without_user_gets_28000(busy):
    s, _ = busy
    body = struct.pack("!I", 196608) + b"database\0appdb\0\0"
    f = raw_error(s.port, struct.pack("!I", len(body) + 4) + body)
    assert f["C"] == "28000"
