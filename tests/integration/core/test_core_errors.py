"""Errors a client meets: each names its cause, arrives promptly and, where
the client can go on, leaves the connection usable."""
import socket
import threading
import time

import psycopg
import pytest


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
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb password=wrong"})
    t0 = time.time()
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect()
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
