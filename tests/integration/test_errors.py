"""Errors the client receives: the right SQLSTATE, a message naming the
cause, promptly, and the connection left usable where the client can go
on (DESIGN.md, "Errors the client receives")."""
import socket
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import Threads, free_port, sqlstate_of, wait_until


def first_error(s, user="app", db="appdb", password=None, timeout=8.0):
    """Log in with the raw protocol and run `select 1`; return the first
    ErrorResponse (fields) and the seconds it took. The error may come at
    login or at the first query, depending on when the pooler needs a
    server."""
    t0 = time.monotonic()
    c = pgwire.Conn.open(s.port, timeout=timeout)
    try:
        try:
            c.startup(user, db, password, timeout=timeout)
        except pgwire.PgError as e:
            return e.fields, time.monotonic() - t0
        c.send(pgwire.query("select 1"))
        msgs = []
        try:
            while True:
                t, payload = c.recv_msg(timeout)
                msgs.append((t, payload))
                if t == "E":
                    return pgwire.parse_error(payload), time.monotonic() - t0
                if t == "Z":
                    break
        except (ConnectionError, OSError):
            pass
        raise AssertionError(f"no ErrorResponse from {db}; got {msgs}")
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_unknown_database_is_3D000(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    fields = pgwire.login_error(s.port, user="app", database="nosuchdb")
    assert fields["C"] == "3D000", fields
    assert "nosuchdb" in fields["M"], fields
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(db="nosuchdb")
    assert "nosuchdb" in str(e.value)
    with s.connect() as c:  # the configured one still works
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_server_side_missing_database_is_relayed(sluice, pg, mode):
    dbs = {"ghost": f"host=127.0.0.1 port={pg.port} dbname=nosuch",
           "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    s = sluice({"pool_mode": mode}, databases=dbs)
    fields, took = first_error(s, db="ghost")
    assert took < 5, f"error took {took:.1f}s"
    assert fields["C"] == "3D000", fields
    assert 'database "nosuch" does not exist' in fields["M"], fields
    # psycopg sees the server's text too, promptly
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as e:
        with s.connect(db="ghost") as c:
            c.execute("select 1")
    assert time.monotonic() - t0 < 5
    assert 'database "nosuch" does not exist' in str(e.value)
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_server_login_wrong_password_is_relayed_promptly(sluice, pg):
    dbs = {"badpw": f"host=127.0.0.1 port={pg.port} dbname=appdb user=md5user password=wrong",
           "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    s = sluice(databases=dbs, userlist={})
    fields, took = first_error(s, db="badpw")
    assert took < 5, f"error took {took:.1f}s"
    assert fields["C"] == "28P01", fields
    assert "md5user" in fields["M"], fields
    # a second client is not left waiting either (a failed login frees its slot)
    fields2, took2 = first_error(s, db="badpw")
    assert took2 < 5, f"second attempt took {took2:.1f}s: {fields2}"
    assert fields2.get("C"), fields2
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_server_unreachable_is_08006_promptly(sluice, pg):
    dead = free_port()  # nothing listens there
    dbs = {"deaddb": f"host=127.0.0.1 port={dead} dbname=appdb",
           "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    s = sluice({"server_connect_timeout": 3}, databases=dbs)
    fields, took = first_error(s, db="deaddb")
    assert took < 5, f"error took {took:.1f}s"
    assert fields["C"] in ("08006", "08001"), fields
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_max_client_conn_refuses_with_53300(sluice):
    s = sluice({"max_client_conn": 3})
    conns = [s.connect() for _ in range(3)]
    try:
        for c in conns:
            assert c.execute("select 1").fetchone() == (1,)
        fields = pgwire.login_error(s.port)
        assert fields["C"] == "53300", fields
        with pytest.raises(psycopg.OperationalError):
            s.connect()
        # one leaves: a slot frees up
        conns.pop().close()

        def can_connect():
            try:
                with s.connect() as c:
                    return c.execute("select 1").fetchone() == (1,)
            except psycopg.OperationalError:
                return False

        assert wait_until(can_connect, timeout=3), "slot of a closed client was not freed"
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_query_wait_timeout_names_the_pool_and_keeps_the_connection(sluice):
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 1})
    a = s.connect()
    b = s.connect()
    try:
        a.execute("begin")
        a.execute("select 1")  # a holds the only server
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            b.execute("select 2")
        took = time.monotonic() - t0
        assert 0.7 <= took < 3.5, f"wait ended after {took:.1f}s, expected ~1s"
        assert sqlstate_of(e.value) == "53300", f"{sqlstate_of(e.value)}: {e.value}"
        msg = str(e.value)
        assert "pool" in msg and "pool_size=1" in msg, msg
        assert not b.closed, "the waiting client's connection was closed"
        a.execute("commit")
        assert b.execute("select 3").fetchone() == (3,)
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(30)
def test_max_waiting_clients_refuses_at_once(sluice):
    s = sluice({"default_pool_size": 1, "max_waiting_clients": 1, "query_wait_timeout": 10})
    a, b, c = s.connect(), s.connect(), s.connect()
    try:
        a.execute("begin")
        a.execute("select 1")
        got = {}

        def waiter():
            got["b"] = b.execute("select 'b'").fetchone()

        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        time.sleep(0.5)  # b is now queued
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            c.execute("select 'c'")
        assert time.monotonic() - t0 < 1.0, "refusal was not immediate"
        assert sqlstate_of(e.value) == "53300", e.value
        a.execute("commit")
        th.join(10)
        assert got.get("b") == ("b",)
        assert c.execute("select 'c again'").fetchone() == ("c again",)
    finally:
        for x in (a, b, c):
            x.close()


@pytest.mark.timeout(30)
def test_query_timeout_is_57014_and_connection_survives(sluice):
    s = sluice({"query_timeout": 1, "pool_mode": "transaction"})
    with s.connect() as c:
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as e:
            c.execute("select pg_sleep(5)")
        assert time.monotonic() - t0 < 3.5
        assert sqlstate_of(e.value) == "57014", e.value
        # whether the pooler cancelled or closed the server, the client goes on
        assert c.execute("select 1").fetchone() == (1,)
    assert wait_until(lambda: not [b for b in s.backends() if "pg_sleep" in (b.query or "")
                                   and b.state == "active"], timeout=3)


@pytest.mark.timeout(30)
def test_idle_transaction_timeout_is_25P03_and_rollback_recovers(sluice):
    s = sluice({"idle_transaction_timeout": 1, "default_pool_size": 1})
    with s.connect() as c:
        c.execute("begin")
        c.execute("select 1")
        assert len(s.backends(state="idle in transaction")) == 1
        # the pooler ends the transaction on the server and returns the server
        assert wait_until(lambda: not s.backends(state="idle in transaction"), timeout=4), \
            "server still idle in transaction after idle_transaction_timeout"
        with pytest.raises(psycopg.Error) as e:
            c.execute("select 2")
        assert sqlstate_of(e.value) == "25P03", e.value
        c.execute("rollback")
        assert c.execute("select 3").fetchone() == (3,)
    with s.connect() as other:  # the pool of one is usable by others
        assert other.execute("select 4").fetchone() == (4,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("send", [b"", b"\x00\x00", b"\x00\x00\x00\x08\x00\x03"], ids=["nothing", "2bytes", "partial"])
def test_client_login_timeout_closes_silent_connection(sluice, send):
    # With tcp_defer_accept (the default) a connection that sends nothing is
    # held by the kernel and never reaches the pooler (test_client_sockets.py);
    # without it, client_login_timeout must close it.
    s = sluice({"client_login_timeout": 1, "tcp_defer_accept": 0 if not send else 1})
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    try:
        if send:
            sock.sendall(send)
        t0 = time.monotonic()
        c = pgwire.Conn(sock)
        try:
            c.wait_closed(timeout=4)
        except TimeoutError:
            pytest.fail("pooler kept a silent connection open past client_login_timeout=1")
        assert time.monotonic() - t0 < 3.5
    finally:
        sock.close()
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_client_login_timeout_during_password_exchange(sluice):
    """A client that never answers the password request is closed too."""
    s = sluice({"client_login_timeout": 1, "auth_type": "md5"}, userlist={"app": "apppass"})
    c = pgwire.Conn.open(s.port)
    try:
        c.send(pgwire.startup_packet({"user": "app", "database": "appdb"}))
        t, payload = c.recv_msg(3)
        assert t == "R", (t, payload)
        try:
            c.wait_closed(timeout=4)
        except TimeoutError:
            pytest.fail("pooler kept a stalled login open past client_login_timeout=1")
    finally:
        c.close()


@pytest.mark.timeout(60)
def test_errors_do_not_leak_pool_slots(sluice):
    """Twenty failing statements (server-side errors) in a pool of one:
    every failure returns the server; the next client is fine."""
    s = sluice({"default_pool_size": 1})

    def fail_once(i):
        with s.connect() as c:
            with pytest.raises(psycopg.errors.DivisionByZero):
                c.execute("select 1/0")
            assert c.execute("select %s::int", [i]).fetchone() == (i,)

    with Threads(join_timeout=30) as th:
        for i in range(20):
            th.start(fail_once, i)
    with s.connect() as c:
        assert c.execute("select 'ok'").fetchone() == ("ok",)


@pytest.mark.timeout(30)
def test_unknown_database(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(db="nosuchdb")
    assert e.value.sqlstate == "3D000" or "3D000" in str(e.value) or "no such database" in str(e.value)


@pytest.mark.timeout(30)
def test_server_side_unknown_database_relayed_promptly(sluice, pg):
    s = sluice(databases={"ghost": f"host=127.0.0.1 port={pg.port} dbname=nosuch"})
    t0 = time.time()
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(db="ghost")
    assert time.time() - t0 < 5
    assert 'database "nosuch" does not exist' in str(e.value)


@pytest.mark.timeout(30)
def test_server_side_bad_password_relayed(sluice, pg):
    # scramuser: the server asks it for a password (app is trusted by the test server)
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb password=wrong"})
    t0 = time.time()
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(user="scramuser")
    assert time.time() - t0 < 5
    assert "password authentication failed" in str(e.value)


@pytest.mark.timeout(30)
def test_max_client_conn(sluice):
    s = sluice({"max_client_conn": 3})
    conns = [s.connect() for _ in range(3)]
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            s.connect()
        assert "max_client_conn" in str(e.value)
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(30)
def test_query_wait_timeout_error_then_usable(sluice):
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 1})
    holder = s.connect(autocommit=False)
    holder.execute("select 1")  # holds the only server in a transaction
    waiter = s.connect()
    t0 = time.time()
    with pytest.raises(psycopg.errors.TooManyConnections) as e:
        waiter.execute("select 2")
    waited = time.time() - t0
    assert 0.8 < waited < 4
    assert e.value.sqlstate == "53300"
    msg = str(e.value)
    assert "pool app/appdb saturated" in msg and "pool_size=1" in msg
    holder.commit()
    assert waiter.execute("select 3").fetchone() == (3,)
    holder.close()
    waiter.close()


@pytest.mark.timeout(30)
def test_client_login_timeout(sluice):
    s = sluice({"client_login_timeout": 1})
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.settimeout(5)
    sock.sendall(b"\x00\x00\x00")  # the start of a startup packet, never finished
    t0 = time.time()
    assert sock.recv(100) == b""
    assert time.time() - t0 < 3.5
    sock.close()
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_login_waiters_all_get_server_error(sluice, pg):
    s = sluice(databases={"ghost": f"host=127.0.0.1 port={pg.port} dbname=nosuch"})
    errors = []

    def attempt():
        try:
            s.connect(db="ghost").close()
        except psycopg.OperationalError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errors) == 8
    assert all("does not exist" in e for e in errors)
