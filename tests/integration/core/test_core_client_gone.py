"""A client that goes away at any point releases its server: nothing is
left idle in transaction or running for nobody, and the next client gets
only its own results."""
import os
import signal
import subprocess
import time

import pytest

from coreutil import wait_until
from wire import Wire, msg, query, rows


def app_backends(pg, state=None):
    return [b for b in pg.backends(user="app", db="appdb") if state is None or b[3] == state]


@pytest.mark.timeout(60)
def test_30_clients_killed_mid_transaction(sluice, pg):
    pg.sql("drop table if exists t_gone; create table t_gone(a int); grant all on t_gone to app", db="appdb")
    s = sluice({"default_pool_size": 40})
    wires = []
    for i in range(30):
        w = Wire(s.port).login("app", "appdb")
        w.simple("begin")
        w.simple(f"insert into t_gone values ({i})")
        wires.append(w)
    assert len(app_backends(pg, "idle in transaction")) == 30
    for w in wires:
        w.close()  # no Terminate: the socket just goes
    assert wait_until(lambda: len(app_backends(pg, "idle in transaction")) == 0, timeout=2)
    assert pg.sql("select count(*) from t_gone", db="appdb") == [(0,)]
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(60)
def test_psql_killed_mid_transaction(sluice, pg):
    s = sluice({"pool_mode": "session"})
    p = subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(s.port), "-U", "app", "appdb"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    p.stdin.write("begin;\nselect 1;\n")
    p.stdin.flush()
    assert wait_until(lambda: len(app_backends(pg, "idle in transaction")) == 1, timeout=5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert wait_until(lambda: len(app_backends(pg, "idle in transaction")) == 0, timeout=2)


@pytest.mark.timeout(60)
def test_disconnect_in_middle_of_large_result(sluice, pg):
    s = sluice({"default_pool_size": 1})
    w = Wire(s.port).login("app", "appdb")
    w.send(query("select repeat('x', 200) from generate_series(1, 3000000)"))
    for _ in range(50):
        w.read_msg()
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "generate_series" in b[4]], timeout=5)
    with s.connect() as c:
        assert c.execute("select 'mine'").fetchone() == ("mine",)


@pytest.mark.timeout(60)
def test_disconnect_mid_copy_in(sluice, pg):
    pg.sql("drop table if exists t_copy_gone; create table t_copy_gone(a int); grant all on t_copy_gone to app",
           db="appdb")
    s = sluice()
    w = Wire(s.port).login("app", "appdb")
    w.send(query("copy t_copy_gone from stdin"))
    t, _ = w.read_msg()
    assert t == b"G"
    w.send(msg(b"d", b"".join(b"%d\n" % i for i in range(1000))))
    time.sleep(0.2)
    w.close()
    assert wait_until(lambda: not app_backends(pg, "idle in transaction")
                      and not app_backends(pg, "active"), timeout=3)
    assert pg.sql("select count(*) from t_copy_gone", db="appdb") == [(0,)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_abandoned_pipelined_sleep(sluice, pg, mode):
    s = sluice({"default_pool_size": 1, "pool_mode": mode})
    w = Wire(s.port).login("app", "appdb")
    w.send(query("select pg_sleep(30)") + query("select 'stale'"))
    time.sleep(0.5)
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "pg_sleep" in b[4]], timeout=3)
    w2 = Wire(s.port).login("app", "appdb")
    out = w2.simple("select 'fresh' as col")
    assert rows(out) == [("fresh",)]
    assert [body for t, body in out if t == b"T"][0].startswith(b"\x00\x01col\x00")
    w2.close()


@pytest.mark.timeout(60)
def test_abandoned_extended_without_sync(sluice, pg):
    s = sluice({"default_pool_size": 1})
    w = Wire(s.port).login("app", "appdb")
    parse = msg(b"P", b"\0select pg_sleep(30)\0\0\0")
    bind = msg(b"B", b"\0\0\0\0\0\0\0\0")
    execute = msg(b"E", b"\0\0\0\0\0")
    w.send(parse + bind + execute + msg(b"H"))
    time.sleep(0.5)
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "pg_sleep" in b[4]], timeout=3)
    with s.connect() as c:
        assert c.execute("select 5").fetchone() == (5,)
