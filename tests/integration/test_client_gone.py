"""Clients that go away without saying goodbye (INCIDENTS.md A.1, A.4).

Whatever state a client leaves in (inside a transaction, in the middle of a
large result, mid-COPY, with a query still running), its server connection
is rolled back and returned at once (or closed), no backend is left idle in
transaction or busy with the dead client's work, and the next client gets a
clean server and its own results."""
import os
import signal
import subprocess
import time

import pytest

import pgwire
from helpers import create_table, stuck_backends, wait_until


def expect_server_within(s, i, timeout=5.0):
    try:
        return pgwire.connect(s.port, timeout=timeout)
    except TimeoutError:
        pytest.fail(f"client {i} got no answer in {timeout}s: servers of abandoned clients were not returned")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["fin", "rst", "half"])
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_abandoned_transactions_return_their_servers(sluice, pg, table, mode, how):
    """30 clients in a row each BEGIN; INSERT; then vanish, on a pool of 5:
    the 6th would wait forever if abandoned servers were not returned."""
    create_table(pg, table)
    s = sluice({"pool_mode": mode, "default_pool_size": 5})
    half_closed = []
    for i in range(30):
        c = expect_server_within(s, i)
        try:
            r = c.query(f"begin; insert into {table} values ({i})", timeout=5)
        except TimeoutError:
            pytest.fail(f"client {i} got no server in 5s: servers of abandoned clients were not returned")
        assert r.errors == [] and r.status == "T", r
        c.close_abruptly(how)
        if how == "half":
            half_closed.append(c)
    try:
        assert wait_until(lambda: not stuck_backends(pg), timeout=2.0), \
            f"backends left behind: {stuck_backends(pg)}"
        assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)], "an abandoned insert was committed"
        with s.connect() as c:
            assert c.execute("select 'still serving'").fetchone() == ("still serving",)
    finally:
        for c in half_closed:
            c.close()


@pytest.mark.timeout(60)
def test_psql_killed_inside_transaction(sluice, pg, table):
    """psql processes killed with SIGKILL while idle in a transaction."""
    create_table(pg, table)
    s = sluice({"default_pool_size": 5, "query_wait_timeout": 5})
    procs = []
    try:
        for i in range(5):
            script = f"begin;\ninsert into {table} values ({i});\n\\! sleep 60\n"
            procs.append(subprocess.Popen(
                ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(s.port), "-U", "app", "-d", "appdb"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                start_new_session=True, env=dict(os.environ, PGCONNECT_TIMEOUT="5", PGSSLMODE="disable")))
            procs[-1].stdin.write(script)
            procs[-1].stdin.flush()
        assert wait_until(lambda: len(s.backends(state="idle in transaction")) == 5, timeout=10), \
            f"psql sessions did not all reach 'idle in transaction': {s.backends()}"
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        assert wait_until(lambda: not stuck_backends(pg), timeout=2.0), f"left behind: {stuck_backends(pg)}"
        # all five slots are free again: five concurrent transactions fit
        held = [expect_server_within(s, i) for i in range(5)]
        for c in held:
            assert c.query_ok("begin; select 1").status == "T"
        for c in held:
            c.terminate()
        assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_disconnect_in_the_middle_of_a_large_result(sluice, pg, how):
    marker = f"midresult_{how}"
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 10})
    c = pgwire.connect(s.port)
    c.send(pgwire.query(f"select generate_series(1, 5000000) /* {marker} */"))
    t, _ = c.recv_msg()
    assert t == "T"
    for _ in range(1000):
        t, _ = c.recv_msg()
        assert t == "D"
    c.close_abruptly(how)
    assert wait_until(lambda: not stuck_backends(pg, marker), timeout=5.0), \
        f"backend still busy with the dead client's query: {stuck_backends(pg, marker)}"
    # the only server (or its replacement) answers the next client with its own result
    with pgwire.connect(s.port, timeout=10) as n:
        r = n.query_ok("select 'fresh' as col")
        assert [t for t, _ in r.messages] == ["T", "D", "C", "Z"], r.messages[:10]
        assert r.columns == ["col"] and r.rows == [("fresh",)] and r.status == "I"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_disconnect_mid_copy_in(sluice, pg, table, mode):
    create_table(pg, table, "i int, t text")
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "query_wait_timeout": 10})
    c = pgwire.connect(s.port)
    c.send(pgwire.query(f"copy {table} from stdin"))
    t, _ = c.recv_msg()
    assert t == "G", f"expected CopyInResponse, got {t!r}"
    for chunk in range(10):
        c.send(pgwire.copy_data("".join(f"{chunk * 1000 + i}\tx\n" for i in range(1000)).encode()))
    time.sleep(0.2)
    c.close_abruptly()
    assert wait_until(lambda: not stuck_backends(pg, "copy"), timeout=3.0), \
        f"backend left in COPY: {stuck_backends(pg, 'copy')}"
    assert wait_until(lambda: not stuck_backends(pg), timeout=2.0), f"left behind: {stuck_backends(pg)}"
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)], "partial COPY was committed"
    with s.connect() as n:
        assert n.execute(f"select count(*) from {table}").fetchone() == (0,)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_client_leaves_with_query_in_flight(sluice, pg, mode, protocol):
    """Send `select pg_sleep(30)` and close at once: the server must not
    stay busy for 30 s, and must not hand the sleep's result (or its
    RowDescription) to the next client."""
    marker = f"abandoned_{mode}_{protocol}"
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "query_wait_timeout": 10})
    c = pgwire.connect(s.port)
    sql = f"select pg_sleep(30) as slept /* {marker} */"
    c.send(pgwire.query(sql) if protocol == "simple" else pgwire.extended_query(sql))
    assert wait_until(lambda: stuck_backends(pg, marker), timeout=3.0), "the query never reached the server"
    c.close_abruptly()
    t0 = time.monotonic()
    assert wait_until(lambda: not stuck_backends(pg, marker), timeout=3.0), \
        f"pg_sleep still running {time.monotonic() - t0:.1f}s after its client left"
    with pgwire.connect(s.port, timeout=10) as n:
        r = n.query_ok("select 'mine' as mine")
        assert [t for t, _ in r.messages] == ["T", "D", "C", "Z"], r.messages[:10]
        assert r.columns == ["mine"] and r.rows == [("mine",)]
    with s.connect() as p:
        cur = p.execute("select 42 as answer")
        assert cur.description[0].name == "answer"
        assert cur.fetchall() == [(42,)]


@pytest.mark.timeout(30)
def test_client_gone_while_waiting_for_a_server(sluice, pg, table):
    """A queued client that leaves is dropped from the queue: its query
    never runs, and the queue moves on."""
    create_table(pg, table)
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 10})
    holder = s.connect()
    try:
        holder.execute("begin")
        holder.execute("select 1")
        w = pgwire.connect(s.port)
        w.send(pgwire.query(f"insert into {table} values (1)"))
        time.sleep(0.3)  # queued behind the holder
        w.close_abruptly()
        time.sleep(0.3)
        holder.execute("commit")
        with s.connect() as n:
            assert n.execute("select 'next'").fetchone() == ("next",)
        assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)], \
            "the query of a client that had left was executed"
    finally:
        holder.close()


@pytest.mark.timeout(30)
def test_psycopg_close_inside_transaction(sluice, pg, table):
    """The well-behaved variant: close() (Terminate) inside a transaction
    rolls back and returns the server."""
    create_table(pg, table)
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 3})
    for i in range(5):
        c = s.connect(autocommit=False)
        c.execute(f"insert into {table} values (%s)", [i])
        c.close()
    with s.connect() as c:
        assert c.execute(f"select count(*) from {table}").fetchone() == (0,)
    assert not stuck_backends(pg)


def app_backends(pg, state=None):
    return [b for b in pg.backends(user="app", db="appdb") if state is None or b.state == state]


@pytest.mark.timeout(60)
def test_30_clients_killed_mid_transaction(sluice, pg, table):
    create_table(pg, table, "a int")
    s = sluice({"default_pool_size": 40})
    wires = []
    for i in range(30):
        w = pgwire.connect(s.port, timeout=10)
        w.query("begin")
        w.query(f"insert into {table} values ({i})")
        wires.append(w)
    assert len(app_backends(pg, "idle in transaction")) == 30
    for w in wires:
        w.close()  # no Terminate: the socket just goes
    assert wait_until(lambda: len(app_backends(pg, "idle in transaction")) == 0, timeout=2)
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
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
    w = pgwire.connect(s.port, timeout=10)
    w.send(pgwire.query("select repeat('x', 200) from generate_series(1, 3000000)"))
    for _ in range(50):
        w.recv_msg(timeout=10)
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "generate_series" in b.query],
                      timeout=5)
    with s.connect() as c:
        assert c.execute("select 'mine'").fetchone() == ("mine",)


@pytest.mark.timeout(60)
def test_disconnect_mid_copy_in_first_chunk(sluice, pg, table):
    create_table(pg, table, "a int")
    s = sluice()
    w = pgwire.connect(s.port, timeout=10)
    w.send(pgwire.query(f"copy {table} from stdin"))
    t, _ = w.recv_msg(timeout=10)
    assert t == "G"
    w.send(pgwire.copy_data(b"".join(b"%d\n" % i for i in range(1000))))
    time.sleep(0.2)
    w.close()
    assert wait_until(lambda: not app_backends(pg, "idle in transaction")
                      and not app_backends(pg, "active"), timeout=3)
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_abandoned_pipelined_sleep(sluice, pg, mode):
    s = sluice({"default_pool_size": 1, "pool_mode": mode})
    w = pgwire.connect(s.port, timeout=10)
    w.send(pgwire.query("select pg_sleep(30)") + pgwire.query("select 'stale'"))
    time.sleep(0.5)
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "pg_sleep" in b.query], timeout=3)
    w2 = pgwire.connect(s.port, timeout=10)
    out = w2.query("select 'fresh' as col")
    assert out.rows == [("fresh",)]
    assert [body for t, body in out.messages if t == "T"][0].startswith(b"\x00\x01col\x00")
    w2.close()


@pytest.mark.timeout(60)
def test_abandoned_extended_without_sync(sluice, pg):
    s = sluice({"default_pool_size": 1})
    w = pgwire.connect(s.port, timeout=10)
    parse = pgwire.msg(b"P", b"\0select pg_sleep(30)\0\0\0")
    bind = pgwire.msg(b"B", b"\0\0\0\0\0\0\0\0")
    execute = pgwire.msg(b"E", b"\0\0\0\0\0")
    w.send(parse + bind + execute + pgwire.msg(b"H"))
    time.sleep(0.5)
    w.close()
    assert wait_until(lambda: not [b for b in app_backends(pg, "active") if "pg_sleep" in b.query], timeout=3)
    with s.connect() as c:
        assert c.execute("select 5").fetchone() == (5,)
