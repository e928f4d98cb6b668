"""Small helpers shared by the integration tests (no fixtures here; those
live in conftest.py)."""
import hashlib
import os
import re
import random
import socket
import threading
import time
import urllib.error
import urllib.request

import psycopg


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLUICE_BIN = os.path.abspath(os.environ.get("PGSLUICE_BIN") or os.path.join(ROOT, "build", "pgsluice"))


def free_port():
    """A port free right now on 127.0.0.1, below the kernel's range for
    outgoing connections (32768-60999): a port the kernel hands out for
    bind(0) may be taken as the source port of the next outgoing connection
    (to PostgreSQL, say) before the pooler listens on it."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32768 on 127.0.0.1")


def wait_until(pred, timeout=5.0, interval=0.05):
    """Poll pred() until it returns something truthy or the timeout passes.
    Returns the last value (falsy on timeout) so the caller can assert with
    its own message."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def md5_secret(user, password):
    """userlist.txt / pg_authid md5 form: "md5" + md5(password + user)."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def object_name(request, prefix="t"):
    """A table name unique to the running test, valid as an identifier."""
    raw = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    name = f"{prefix}_{raw}"
    if len(name) > 50:
        name = name[:40] + "_" + hashlib.md5(name.encode()).hexdigest()[:8]
    return name


def sqlstate_of(exc):
    """SQLSTATE of a psycopg error, also for errors raised while the
    connection was being closed (psycopg keeps diag when it can)."""
    st = getattr(exc, "sqlstate", None)
    if st:
        return st
    diag = getattr(exc, "diag", None)
    return getattr(diag, "sqlstate", None) if diag is not None else None


def assert_healthy(sluice, user="app", db="appdb"):
    """The pooler process is alive and serves a fresh client."""
    assert sluice.alive(), "pgsluice process died:\n" + sluice.log_tail()
    with sluice.connect(user=user, db=db) as c:
        assert c.execute("select 1 as ok").fetchone() == (1,)


class Threads:
    """Run callables in threads; join with a deadline; collect exceptions.

        with Threads() as th:
            for i in range(20): th.start(work, i)
        # on exit: joined, and the first exception (if any) re-raised
    """

    def __init__(self, join_timeout=60.0):
        self.threads = []
        self.errors = []
        self.results = []
        self.join_timeout = join_timeout
        self.lock = threading.Lock()

    def start(self, fn, *args, **kw):
        def run():
            try:
                r = fn(*args, **kw)
                with self.lock:
                    self.results.append(r)
            except BaseException as e:  # noqa: BLE001 - re-raised in join()
                with self.lock:
                    self.errors.append(e)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def join(self):
        deadline = time.monotonic() + self.join_timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in self.threads)
        if self.errors:
            raise self.errors[0]
        assert alive == 0, f"{alive} worker threads still running after {self.join_timeout}s"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.join()


def expect_error(fn, *args, **kw):
    """Call fn and return the psycopg.Error it raises (AssertionError if none)."""
    try:
        fn(*args, **kw)
    except psycopg.Error as e:
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded; an error was expected")


def create_table(pg, name, columns="i int"):
    """Create table name in appdb, owned by app (dropped by the `table` fixture)."""
    pg.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({columns}); ALTER TABLE {name} OWNER TO app",
           db="appdb")
    return name


def stuck_backends(pg, marker=None, states=("active", "idle in transaction", "idle in transaction (aborted)")):
    """Backends of user app in appdb in one of states (whose query
    contains marker, if given)."""
    return [b for b in pg.backends(db="appdb", user="app")
            if b.state in states and (marker is None or marker in (b.query or ""))]


def prometheus_samples(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition;
    fails on a line that is neither a comment nor a sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, name, required=False, **labels):
    """Sum of the samples (from prometheus_samples) of name whose labels
    include labels; 0 when there is none, or an AssertionError when
    required."""
    want = set(labels.items())
    hits = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    assert hits or not required, f"no sample {name} {labels}"
    return sum(hits)


def http_get(port, path, timeout=5):
    """(status, body text) of a GET on the pooler's HTTP endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_show(s, what):
    """Rows of SHOW what on the pooler's admin console, as dicts."""
    with s.connect(user="postgres", db="pgsluice") as c:
        cur = c.execute(f"SHOW {what}")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def clients_listed(s):
    """Client connections the pooler knows of (SHOW CLIENTS), the admin's own excluded."""
    return [r for r in admin_show(s, "CLIENTS") if r["database"] != "pgsluice"]
