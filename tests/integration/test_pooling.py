"""Pooling: pool sizes hold, transaction mode shares servers and releases
them at commit, session mode resets them, servers expire when idle or old,
idle clients are closed, and a server that died while idle is never handed
to a client."""
import os
import re
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import Threads, wait_until


@pytest.mark.timeout(90)
def test_transaction_mode_20_clients_share_3_servers(sluice):
    s = sluice({"default_pool_size": 3})
    pids = set()
    pids_lock = threading.Lock()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], len(s.backends()))
            time.sleep(0.02)

    def work(i):
        with s.connect(autocommit=False) as c:
            for j in range(20):
                row = c.execute("select pg_backend_pid(), %s::int, pg_sleep(0.002)", [i * 100 + j]).fetchone()
                assert row[1] == i * 100 + j
                c.commit()
                with pids_lock:
                    pids.add(row[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with Threads(join_timeout=60) as th:
            for i in range(20):
                th.start(work, i)
    finally:
        stop.set()
        sampler.join(5)
    assert 1 <= len(pids) <= 3, f"clients ran on {len(pids)} distinct backends with default_pool_size=3"
    assert peak[0] <= 3, f"saw {peak[0]} server connections at once with default_pool_size=3"


@pytest.mark.timeout(30)
def test_session_mode_keeps_session_state(sluice):
    s = sluice({"pool_mode": "session", "default_pool_size": 2})
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        c.execute("set work_mem = '7MB'")
        c.execute("create temp table session_tmp(x int)")
        c.execute("insert into session_tmp values (1), (2)")
        for _ in range(5):
            assert c.execute("show work_mem").fetchone() == ("7MB",)
            assert c.execute("select count(*) from session_tmp").fetchone() == (2,)
            assert c.execute("select pg_backend_pid()").fetchone() == (pid,)


@pytest.mark.timeout(30)
def test_session_mode_resets_server_for_next_client(sluice):
    s = sluice({"pool_mode": "session", "default_pool_size": 1, "query_wait_timeout": 5})
    default_work_mem = None
    with s.connect() as c:
        default_work_mem = c.execute("show work_mem").fetchone()[0]
        c.execute("set work_mem = '7MB'")
        c.execute("create temp table leftover(x int)")
        c.execute("prepare leftover_stmt as select 1")
    with s.connect() as c:
        assert c.execute("show work_mem").fetchone() == (default_work_mem,), "SET leaked to the next client"
        assert c.execute("select to_regclass('pg_temp.leftover')").fetchone() == (None,), "temp table leaked"
        assert c.execute("select count(*) from pg_prepared_statements").fetchone() == (0,), \
            "prepared statement leaked"
        c.execute("prepare leftover_stmt as select 2")  # would fail if the old one were still there


@pytest.mark.timeout(30)
def test_session_mode_server_returns_when_client_leaves(sluice):
    s = sluice({"pool_mode": "session", "default_pool_size": 1, "query_wait_timeout": 3})
    for i in range(10):
        with s.connect() as c:
            assert c.execute("select %s::int", [i]).fetchone() == (i,)


@pytest.mark.timeout(30)
def test_transaction_mode_releases_at_commit(sluice):
    """Two clients alternate transactions on a pool of one server."""
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 3})
    a = s.connect(autocommit=False)
    b = s.connect(autocommit=False)
    try:
        pids = set()
        for i in range(10):
            pids.add(a.execute("select pg_backend_pid()").fetchone()[0])
            a.commit()
            pids.add(b.execute("select pg_backend_pid()").fetchone()[0])
            b.rollback()
        assert len(pids) == 1, f"pool of one used {len(pids)} servers"
        # a held transaction blocks the other client until commit
        a.execute("select 1")
        done = threading.Event()

        def other():
            b.execute("select 2")
            b.commit()
            done.set()

        th = threading.Thread(target=other, daemon=True)
        th.start()
        assert not done.wait(0.5), "second client got the server while the first held a transaction"
        a.commit()
        assert done.wait(3), "second client did not get the server after commit"
        th.join(3)
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ending", ["rollback", "disconnect"])
def test_failed_transaction_does_not_poison_the_pool(sluice, ending):
    s = sluice({"default_pool_size": 1, "query_wait_timeout": 3})
    a = pgwire.connect(s.port)
    a.query("begin")
    r = a.query("select 1/0")
    assert r.errors and r.status == "E"
    if ending == "rollback":
        assert a.query_ok("rollback").status == "I"
    else:
        a.close_abruptly()
    with pgwire.connect(s.port) as b:
        r = b.query_ok("select 42")
        assert r.rows == [("42",)]
        assert r.status == "I", f"next client was handed a server in transaction state {r.status!r}"


@pytest.mark.timeout(120)
def test_pgbench_100_clients_on_pool_of_10(sluice, pg):
    db = "bench_pgsluice"
    pg.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    pg.sql(f"CREATE DATABASE {db} OWNER app")
    try:
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        init = subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "app",
                               db], capture_output=True, text=True, timeout=60, env=env)
        assert init.returncode == 0, init.stderr
        s = sluice({"default_pool_size": 10, "max_client_conn": 200, "pool_mode": "transaction"})
        r = subprocess.run(["pgbench", "-n", "-c", "100", "-j", "2", "-T", "10", "-S", "-h", "127.0.0.1",
                            "-p", str(s.port), "-U", "app", db], capture_output=True, text=True, timeout=60, env=env)
        out = r.stdout + r.stderr
        assert r.returncode == 0, f"pgbench failed (rc {r.returncode}):\n{out[-3000:]}"
        m = re.search(r"number of failed transactions: (\d+)", out)
        assert m is None or m.group(1) == "0", out
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 1000, out
        assert len(s.backends()) <= 10
    finally:
        pg.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.mark.timeout(30)
def test_server_idle_timeout_closes_idle_servers(sluice):
    s = sluice({"server_idle_timeout": 1})
    with s.connect() as c:
        c.execute("select 1")
        assert len(s.backends()) == 1
        t0 = time.monotonic()
        assert wait_until(lambda: not s.backends(), timeout=3.5), \
            f"idle server still open {time.monotonic() - t0:.1f}s after release with server_idle_timeout=1"
        assert c.execute("select 2").fetchone() == (2,)  # a new one is opened on demand


@pytest.mark.timeout(30)
def test_server_lifetime_closes_old_servers_once_idle(sluice):
    s = sluice({"server_lifetime": 1, "server_idle_timeout": 600})
    with s.connect() as c:
        # a server in use past its lifetime is not taken away
        c.execute("begin")
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        time.sleep(2.0)
        assert c.execute("select pg_backend_pid()").fetchone() == (pid,)
        c.execute("commit")
        # once idle it is closed
        assert wait_until(lambda: pid not in [b.pid for b in s.pg.backends()], timeout=3.5), \
            "server past server_lifetime=1 still open after it became idle"
        assert c.execute("select 3").fetchone() == (3,)


@pytest.mark.timeout(30)
def test_client_idle_timeout_closes_idle_client(sluice):
    s = sluice({"client_idle_timeout": 1})
    c = s.connect()
    try:
        c.execute("select 1")
        # a client busy in a query is not idle
        assert c.execute("select pg_sleep(2), 'busy'").fetchone()[1] == "busy"
        time.sleep(2.5)
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    finally:
        c.close()
    with s.connect() as c2:
        assert c2.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction"])
def test_server_killed_while_idle_is_not_handed_out(sluice, pg, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 1})
    with s.connect() as c:
        pid1 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pg.terminate(pid1)
        assert wait_until(lambda: pid1 not in [b.pid for b in pg.backends()], timeout=5)
        time.sleep(0.2)  # the FIN has reached the pooler
        pid2 = c.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 != pid1
    with s.connect() as c:
        assert c.execute("select 'next client'").fetchone() == ("next client",)


@pytest.mark.timeout(90)
def test_postgres_restart_idle_servers_are_replaced(sluice, pg):
    s = sluice({"default_pool_size": 3})
    with Threads() as th:  # warm several servers
        for _ in range(3):
            th.start(lambda: s.connect().execute("select pg_sleep(0.3)").connection.close())
    c = s.connect()
    try:
        assert c.execute("select 1").fetchone() == (1,)
        pg.restart()
        time.sleep(0.3)
        assert c.execute("select 'after restart'").fetchone() == ("after restart",)
        with s.connect() as c2:
            assert c2.execute("select 2").fetchone() == (2,)
    finally:
        c.close()
