"""Cancel requests reach the server linked to the client that asked, and
never a server that has moved on to another client."""
import threading
import time

import psycopg
import pytest

from wire import Wire, cancel_packet, rows


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
    one = Wire(s.port).login("app", "appdb")
    one.simple("select 1")  # server released at the end of the transaction
    two = Wire(s.port).login("app", "appdb")
    two.send(b"Q" + (len("select pg_sleep(1.5), 'done'") + 5).to_bytes(4, "big") + b"select pg_sleep(1.5), 'done'\0")
    time.sleep(0.3)
    c = Wire(s.port)
    c.send(cancel_packet(one.pid, one.key))
    c.close()
    out = two.read_until((b"Z",), timeout=10)
    assert not [b for t, b in out if t == b"E"], out
    assert rows(out) == [("", "done")]
    one.close()
    two.close()


@pytest.mark.timeout(30)
def test_cancel_with_random_key_is_harmless(sluice):
    s = sluice()
    c = s.connect()
    w = Wire(s.port)
    w.send(cancel_packet(12345, 67890))
    assert w.closed_within(3)
    assert c.execute("select 1").fetchone() == (1,)
    c.close()


@pytest.mark.timeout(30)
def test_client_keys_are_distinct(sluice):
    s = sluice()
    a = Wire(s.port).login("app", "appdb")
    b = Wire(s.port).login("app", "appdb")
    assert (a.pid, a.key) != (b.pid, b.key)
    a.close()
    b.close()
