"""Raw PostgreSQL v3 protocol over a socket.

For tests that must send what no driver would (garbage, abandoned
pipelines, stale cancel keys) or must see the exact messages a pooler
sends back. Everything here is blocking with explicit timeouts: a read
that gets nothing raises TimeoutError instead of hanging the test.

    c = pgwire.connect(port, user="app", database="appdb")
    res = c.query("select 1")          # Result(rows=[('1',)], tags=['SELECT 1'], ...)
    c.close_abruptly()                 # no Terminate, as a crashed client would
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTO_30 = 196608
CANCEL_CODE = 80877102
SSL_CODE = 80877103
GSSENC_CODE = 80877104

ERROR_FIELDS = {
    "S": "severity_localized", "V": "severity", "C": "sqlstate", "M": "message",
    "D": "detail", "H": "hint", "P": "position", "W": "where", "F": "file",
    "L": "line", "R": "routine",
}


# ---------------------------------------------------------------- builders

def packet(body):
    """An untyped packet (startup family): int32 length, then body."""
    return struct.pack("!I", len(body) + 4) + body


def startup_packet(params=None, version=PROTO_30, **kw):
    """StartupMessage. params is an ordered dict-like of name -> value."""
    items = list((params or {}).items()) + list(kw.items())
    body = struct.pack("!I", version)
    for k, v in items:
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return packet(body)


def ssl_request():
    return struct.pack("!II", 8, SSL_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_CODE, pid & 0xFFFFFFFF, key & 0xFFFFFFFF)


def msg(type_, payload=b""):
    """A typed frontend message with a correct length word."""
    if isinstance(type_, str):
        type_ = type_.encode()
    return type_ + struct.pack("!I", len(payload) + 4) + payload


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def query(sql):
    return msg(b"Q", cstr(sql))


def parse(sql, name="", param_types=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(param_types))
               + b"".join(struct.pack("!I", t) for t in param_types))


def bind(params=(), portal="", statement=""):
    """Bind with all parameters and results in text format."""
    body = cstr(portal) + cstr(statement) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = p.encode() if isinstance(p, str) else bytes(p)
            body += struct.pack("!i", len(b)) + b
    body += struct.pack("!H", 0)
    return msg(b"B", body)


def describe(kind="P", name=""):
    return msg(b"D", kind.encode() + cstr(name))


def execute(portal="", max_rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", max_rows))


def close(kind="S", name=""):
    return msg(b"C", kind.encode() + cstr(name))


def sync():
    return msg(b"S")


def flush():
    return msg(b"H")


def terminate():
    return msg(b"X")


def copy_data(data):
    return msg(b"d", data)


def copy_done():
    return msg(b"c")


def copy_fail(reason="abandoned"):
    return msg(b"f", cstr(reason))


def password_message(data):
    return msg(b"p", data)


def extended_query(sql, params=()):
    """Parse/Bind/Describe/Execute/Sync of an unnamed statement."""
    return parse(sql) + bind(params) + describe() + execute() + sync()


# ---------------------------------------------------------------- parsing

def parse_error(payload):
    """ErrorResponse/NoticeResponse body -> dict with short and long keys."""
    out = {}
    for part in payload.split(b"\0"):
        if not part:
            continue
        code = chr(part[0])
        val = part[1:].decode("utf-8", "replace")
        out[code] = val
        if code in ERROR_FIELDS:
            out[ERROR_FIELDS[code]] = val
    return out


def parse_row_description(payload):
    n = struct.unpack("!H", payload[:2])[0]
    pos = 2
    names = []
    for _ in range(n):
        end = payload.index(b"\0", pos)
        names.append(payload[pos:end].decode())
        pos = end + 1 + 18
    return names


def parse_data_row(payload):
    n = struct.unpack("!H", payload[:2])[0]
    pos = 2
    vals = []
    for _ in range(n):
        ln = struct.unpack("!i", payload[pos:pos + 4])[0]
        pos += 4
        if ln < 0:
            vals.append(None)
        else:
            vals.append(payload[pos:pos + ln].decode("utf-8", "replace"))
            pos += ln
    return tuple(vals)


class PgError(Exception):
    """An ErrorResponse received where success was expected."""

    def __init__(self, fields, during=""):
        self.fields = fields
        self.sqlstate = fields.get("C")
        self.message = fields.get("M", "")
        self.severity = fields.get("V") or fields.get("S")
        super().__init__(f"{during}{self.severity} {self.sqlstate}: {self.message}")


class Result:
    def __init__(self):
        self.columns = []
        self.rows = []
        self.tags = []
        self.errors = []      # list of error field dicts
        self.notices = []
        self.messages = []    # (type, payload) in order, for exact checks
        self.status = None    # ReadyForQuery status byte as str

    @property
    def error(self):
        return self.errors[0] if self.errors else None

    def __repr__(self):
        return (f"Result(columns={self.columns}, rows={self.rows[:5]}{'...' if len(self.rows) > 5 else ''}, "
                f"tags={self.tags}, errors={self.errors}, status={self.status})")


# ---------------------------------------------------------------- connection

class Conn:
    """One socket with a receive buffer. Methods never block longer than
    their timeout."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pid = None
        self.key = None
        self.params = {}
        self.status = None

    @classmethod
    def open(cls, port, host="127.0.0.1", timeout=5.0):
        if host.startswith("/"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(os.path.join(host, f".s.PGSQL.{port}"))
        else:
            s = socket.create_connection((host, port), timeout=timeout)
        return cls(s)

    # -- raw I/O

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from peer before the deadline")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError("no data from peer before the deadline") from None
        if not chunk:
            raise ConnectionError("connection closed by peer")
        self.buf += chunk

    def recv_bytes(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_msg(self, timeout=5.0):
        """Next backend message as (type str, payload bytes). Raises
        TimeoutError, or ConnectionError when the peer closed first."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 5:
            self._fill(deadline)
        t = chr(self.buf[0])
        n = struct.unpack("!I", bytes(self.buf[1:5]))[0]
        if n < 4 or n > (1 << 30):
            raise ValueError(f"bad length {n} in backend message {t!r}")
        while len(self.buf) < n + 1:
            self._fill(deadline)
        payload = bytes(self.buf[5:n + 1])
        del self.buf[:n + 1]
        return t, payload

    def wait_closed(self, timeout=5.0):
        """Read until the peer closes. Returns the messages received before
        the close (a trailing partial message is dropped). Raises
        TimeoutError if the connection is still open at the deadline."""
        msgs = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msgs.append(self.recv_msg(max(0.0, deadline - time.monotonic())))
            except (ConnectionError, OSError) as e:
                if isinstance(e, TimeoutError):
                    raise TimeoutError(f"connection still open after {timeout}s; got {msgs}") from None
                return msgs
            except ValueError:
                # not a PostgreSQL message: treat the rest as noise, keep waiting for the close
                self.buf.clear()

    def is_closed(self, timeout=0.5):
        try:
            self.wait_closed(timeout)
            return True
        except TimeoutError:
            return False

    # -- login

    def startup(self, user, database=None, password=None, params=None, timeout=5.0, version=PROTO_30):
        """Send a StartupMessage and complete authentication and the
        parameter exchange. Raises PgError on an ErrorResponse."""
        p = {"user": user}
        if database is not None:
            p["database"] = database
        p.update(params or {})
        self.send(startup_packet(p, version=version))
        return self.finish_login(user, password, timeout)

    def finish_login(self, user, password=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        scram = None
        while True:
            t, payload = self.recv_msg(max(0.0, deadline - time.monotonic()))
            if t == "E":
                raise PgError(parse_error(payload), "login failed: ")
            if t == "R":
                code = struct.unpack("!I", payload[:4])[0]
                if code == 0:
                    continue
                if password is None:
                    raise PgError({"C": "none", "M": f"server asked for a password (auth code {code})"})
                if code == 3:
                    self.send(password_message(cstr(password)))
                elif code == 5:
                    salt = payload[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                    self.send(password_message(cstr("md5" + hashlib.md5(inner + salt).hexdigest())))
                elif code == 10:
                    mechs = [m.decode() for m in payload[4:].split(b"\0") if m]
                    if "SCRAM-SHA-256" not in mechs:
                        raise PgError({"C": "none", "M": f"no supported SASL mechanism in {mechs}"})
                    scram = ScramClient(password)
                    first = scram.client_first()
                    self.send(msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first))
                elif code == 11:
                    self.send(msg(b"p", scram.client_final(payload[4:])))
                elif code == 12:
                    scram.verify_server_final(payload[4:])
                else:
                    raise PgError({"C": "none", "M": f"unsupported auth request {code}"})
            elif t == "K":
                self.pid, self.key = struct.unpack("!II", payload[:8])
            elif t == "S":
                name, value = payload.split(b"\0")[:2]
                self.params[name.decode()] = value.decode()
            elif t == "Z":
                self.status = chr(payload[0])
                return self
            elif t in ("N", "v"):
                continue
            else:
                raise ValueError(f"unexpected message {t!r} during login")

    # -- queries

    def read_result(self, timeout=10.0, until="Z"):
        """Collect backend messages up to and including ReadyForQuery."""
        res = Result()
        deadline = time.monotonic() + timeout
        while True:
            t, payload = self.recv_msg(max(0.0, deadline - time.monotonic()))
            res.messages.append((t, payload))
            if t == "T":
                res.columns = parse_row_description(payload)
            elif t == "D":
                res.rows.append(parse_data_row(payload))
            elif t == "C":
                res.tags.append(payload.rstrip(b"\0").decode())
            elif t == "E":
                res.errors.append(parse_error(payload))
            elif t == "N":
                res.notices.append(parse_error(payload))
            elif t == "S":
                name, value = payload.split(b"\0")[:2]
                self.params[name.decode()] = value.decode()
            elif t == "Z":
                res.status = self.status = chr(payload[0])
            if t == until:
                return res

    def query(self, sql, timeout=10.0):
        self.send(query(sql))
        return self.read_result(timeout)

    def query_ok(self, sql, timeout=10.0):
        res = self.query(sql, timeout)
        if res.errors:
            raise PgError(res.errors[0], f"{sql!r}: ")
        return res

    def extended(self, sql, params=(), timeout=10.0):
        self.send(extended_query(sql, params))
        return self.read_result(timeout)

    # -- endings

    def terminate(self):
        try:
            self.send(terminate())
        except OSError:
            pass
        self.sock.close()

    def close_abruptly(self, how="fin"):
        """Go away without Terminate: 'fin' is a plain close, 'rst' a reset
        (SO_LINGER 0, as a killed process behind a NAT might), 'half' a
        shutdown of our sending side only (the socket stays readable)."""
        if how == "rst":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        elif how == "half":
            self.sock.shutdown(socket.SHUT_WR)
        else:
            self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(port, user="app", database="appdb", password=None, host="127.0.0.1", params=None, timeout=5.0):
    c = Conn.open(port, host, timeout)
    try:
        return c.startup(user, database, password, params, timeout)
    except BaseException:
        c.close()
        raise


def login_error(port, user="app", database="appdb", password=None, host="127.0.0.1", params=None, timeout=5.0):
    """Try to log in and return the ErrorResponse fields the peer sent.
    Fails (AssertionError) when the login succeeds or no error comes."""
    c = Conn.open(port, host, timeout)
    try:
        try:
            c.startup(user, database, password, params, timeout)
        except PgError as e:
            return e.fields
        except (ConnectionError, OSError) as e:
            raise AssertionError(f"connection closed without an ErrorResponse ({e})") from None
        raise AssertionError(f"login as {user}/{database} succeeded; expected an error")
    finally:
        c.close()


# ---------------------------------------------------------------- SCRAM

class ScramClient:
    """SCRAM-SHA-256 client side (RFC 5802/7677), no channel binding."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = None

    def client_first(self):
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_msg = f"{self.first_bare},{sf},{without_proof}".encode()
        sig = hmac.new(stored_key, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_signature = hmac.new(server_key, auth_msg, "sha256").digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, data):
        attrs = dict(kv.split("=", 1) for kv in data.decode().split(","))
        if "e" in attrs:
            raise PgError({"C": "28000", "M": f"SCRAM server error: {attrs['e']}"})
        if base64.b64decode(attrs["v"]) != self.server_signature:
            raise PgError({"C": "28000", "M": "SCRAM server signature mismatch"})


def scram_secret(password, salt=None, iterations=4096):
    """A stored SCRAM-SHA-256 secret as PostgreSQL writes it in pg_authid."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"

