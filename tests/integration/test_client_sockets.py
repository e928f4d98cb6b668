"""Client sockets get the configured TCP keepalive without a system call per
connection: the listening socket carries the options and every accepted
socket inherits them; a reload changes them for connections accepted after it.
What the kernel holds for the pooler's end of each connection is read with
`ss`, independently of the pooler."""
import os
import re
import socket
import subprocess
import time

import pgwire
from helpers import clients_listed, wait_until


def pooler_side(s, conn):
    """ss's line for the pooler's end of a psycopg connection."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sk:
        client_port = sk.getsockname()[1]
    out = subprocess.run(
        ["ss", "-tnoH", "state", "established", f"( sport = :{s.port} and dport = :{client_port} )"],
        capture_output=True, text=True, timeout=10).stdout.strip()
    assert out, f"ss does not list the pooler's end of the connection from port {client_port}"
    return out


def keepalive_seconds(line):
    m = re.search(r"timer:\(keepalive,(?:(\d+)min)?(\d+(?:\.\d+)?)(m?s)", line)
    if m is None:
        return None
    minutes = int(m.group(1) or 0)
    value = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
    return minutes * 60 + value


def test_client_sockets_inherit_keepalive_and_reload_changes_it(sluice):
    s = sluice({"tcp_keepalive": 1, "tcp_keepidle": 17, "tcp_keepintvl": 5, "tcp_keepcnt": 2})
    with s.connect() as c:
        c.execute("select 1")
        # While sent bytes wait for their ACK, ss shows that timer instead.
        assert wait_until(lambda: keepalive_seconds(pooler_side(s, c)) is not None, timeout=5), \
            f"no keepalive timer on the pooler's end: {pooler_side(s, c)}"
        line = pooler_side(s, c)
        secs = keepalive_seconds(line)
        assert 10 < secs <= 17, f"keepalive timer {secs}s, expected tcp_keepidle=17s: {line}"

        s.rewrite({"tcp_keepalive": 0})
        s.reload()
        s.wait_log(r"reload done", timeout=5)

        def fresh_has_no_keepalive():
            with s.connect() as c2:
                c2.execute("select 1")
                line2 = wait_until(lambda: (lambda ln: ln if "timer:(on" not in ln else None)(pooler_side(s, c2)),
                                   timeout=5)
                return line2 is not None and keepalive_seconds(line2) is None
        assert wait_until(fresh_has_no_keepalive, timeout=5), \
            "after tcp_keepalive=0 and a reload, new connections still get keepalive"
        # The connection made before the reload keeps what it had.
        assert wait_until(lambda: keepalive_seconds(pooler_side(s, c)) is not None, timeout=5)
        c.execute("select 1")


def test_defer_accept_hides_silent_connections_until_they_speak(sluice):
    """With tcp_defer_accept (the default, as in PgBouncer) a connection that
    has sent nothing is not handed to the pooler at all: it costs no client
    slot and no wake-up. The startup packet, once sent, is read at once and
    the login completes. With tcp_defer_accept = 0 the same silent connection
    is a client in the startup state."""
    s = sluice()
    silent = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        time.sleep(0.5)
        assert clients_listed(s) == [], "a connection that sent nothing was accepted"
        c = pgwire.Conn(silent)
        c.startup("app", "appdb")
        r = c.query("select 7")
        assert r.errors == [] and len(r.rows) == 1, r
        assert len(clients_listed(s)) == 1
    finally:
        silent.close()

    s.rewrite({"tcp_defer_accept": 0})
    s.reload()
    s.wait_log(r"reload done", timeout=5)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5):
        assert wait_until(lambda: len(clients_listed(s)) == 1, timeout=5), \
            "with tcp_defer_accept = 0 a silent connection should be accepted"
