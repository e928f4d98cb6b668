"""Cancel requests: a client's cancel stops its own query, quickly, in both
pool modes, and never a query of another client that now runs on the
server the first client used to have."""
import os
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import stuck_backends


def send_cancel(port, pid, key):
    """CancelRequest on a fresh connection; returns whether the pooler
    closed that connection afterwards (it must send nothing back)."""
    c = pgwire.Conn.open(port)
    try:
        c.send(pgwire.cancel_request(pid, key))
        return c.wait_closed(timeout=5)
    finally:
        c.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_psycopg_cancel_stops_running_query(sluice, pg, mode):
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        timer = threading.Timer(0.5, c.cancel)
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as e:
                c.execute("select pg_sleep(10) /* cancel_me */")
        finally:
            timer.cancel()
        took = time.monotonic() - t0
        assert took < 2.5, f"cancel took effect after {took:.1f}s"
        assert e.value.sqlstate == "57014"
        assert c.execute("select 'after cancel'").fetchone() == ("after cancel",)
    assert not stuck_backends(pg, "cancel_me")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_raw_cancel_request_with_own_keys(sluice, mode):
    s = sluice({"pool_mode": mode})
    c = pgwire.connect(s.port)
    try:
        assert c.pid is not None and c.key is not None, "pooler sent no BackendKeyData"
        c.send(pgwire.query("select pg_sleep(10)"))
        time.sleep(0.5)
        t0 = time.monotonic()
        assert send_cancel(s.port, c.pid, c.key) == []
        r = c.read_result(timeout=5)
        assert time.monotonic() - t0 < 2
        assert r.errors and r.errors[0]["C"] == "57014", r
        assert r.status == "I"
        assert c.query_ok("select 1").rows == [("1",)]
    finally:
        c.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("first_client", ["still_connected", "gone"])
def test_stale_cancel_keys_cannot_hit_another_client(sluice, first_client):
    """Client 1 gets its keys, runs a transaction, releases the only server.
    Client 2 runs pg_sleep(2) on that server. A CancelRequest with client 1's
    keys must not cancel client 2's query."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    c1 = pgwire.connect(s.port)
    c2 = None
    try:
        assert c1.pid is not None, "pooler sent no BackendKeyData"
        keys = (c1.pid, c1.key)
        assert c1.query_ok("begin; select pg_backend_pid(); commit").status == "I"
        if first_client == "gone":
            c1.terminate()
        c2 = pgwire.connect(s.port)
        assert (c2.pid, c2.key) != keys, "two clients got the same cancel keys"
        c2.send(pgwire.query("select pg_sleep(2), 'completed' as outcome"))
        time.sleep(0.5)
        send_cancel(s.port, *keys)
        r = c2.read_result(timeout=10)
        assert r.errors == [], f"client 2's query was cancelled by client 1's keys: {r.errors}"
        assert r.rows == [("", "completed")], r
        if first_client == "still_connected":
            assert c1.query_ok("select 'c1 fine'").rows == [("c1 fine",)]
    finally:
        c1.close()
        if c2:
            c2.close()


@pytest.mark.timeout(30)
def test_cancel_while_idle_is_harmless(sluice):
    """Transaction mode: an idle client has no server; its cancel must go
    nowhere (in particular not to whoever holds a server)."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    idle = pgwire.connect(s.port)
    busy = pgwire.connect(s.port)
    try:
        busy.send(pgwire.query("select pg_sleep(1), 'busy done'"))
        time.sleep(0.3)
        send_cancel(s.port, idle.pid, idle.key)
        r = busy.read_result(timeout=5)
        assert r.errors == [] and r.rows == [("", "busy done")], r
        assert idle.query_ok("select 'idle fine'").rows == [("idle fine",)]
    finally:
        idle.close()
        busy.close()


@pytest.mark.timeout(30)
def test_cancel_with_random_keys_is_closed_and_harmless(sluice):
    s = sluice()
    busy = pgwire.connect(s.port)
    try:
        busy.send(pgwire.query("select pg_sleep(1), 'untouched'"))
        time.sleep(0.3)
        for _ in range(20):
            pid, key = int.from_bytes(os.urandom(4), "big"), int.from_bytes(os.urandom(4), "big")
            assert send_cancel(s.port, pid, key) == []
        r = busy.read_result(timeout=5)
        assert r.errors == [] and r.rows == [("", "untouched")], r
    finally:
        busy.close()
    assert s.alive()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_psycopg_cancel(sluice, mode):
    s = sluice({"pool_mode": mode})
    c = s.connect()
    threading.Timer(0.5, c.cancel).start()
    t0 = time.time()
    with pytest.raises(psycopg.errors.QueryCanceled):
        c.execute("select pg_sleep(10)")
    assert time.time() - t0 < 3
    assert c.execute("select 1").fetchone() == (1,)
    c.close()


@pytest.mark.timeout(30)
def test_stale_cancel_cannot_hit_another_client(sluice):
    s = sluice({"default_pool_size": 1})
    one = pgwire.connect(s.port)
    one.query("select 1")  # server released at the end of the transaction
    two = pgwire.connect(s.port)
    two.send(pgwire.query("select pg_sleep(1.5), 'done'"))
    time.sleep(0.3)
    c = pgwire.Conn.open(s.port)
    c.send(pgwire.cancel_request(one.pid, one.key))
    c.close()
    out = two.read_result(timeout=10)
    assert not out.errors, out
    assert out.rows == [("", "done")]
    one.close()
    two.close()


@pytest.mark.timeout(30)
def test_cancel_with_random_key_is_harmless(sluice):
    s = sluice()
    c = s.connect()
    w = pgwire.Conn.open(s.port)
    w.send(pgwire.cancel_request(12345, 67890))
    assert w.is_closed(3)
    assert c.execute("select 1").fetchone() == (1,)
    c.close()


@pytest.mark.timeout(30)
def test_client_keys_are_distinct(sluice):
    s = sluice()
    a = pgwire.connect(s.port)
    b = pgwire.connect(s.port)
    assert (a.pid, a.key) != (b.pid, b.key)
    a.close()
    b.close()
