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
from helpers import Threads, admin_show, wait_until


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


@pytest.mark.timeout(60)
def test_transaction_mode_shares_few_servers(sluice, pg):
    s = sluice({"default_pool_size": 3})
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], len(pg.backends(user="app", db="appdb")))
            time.sleep(0.02)

    errors = []

    def work():
        try:
            with s.connect(autocommit=False) as c:
                for i in range(20):
                    assert c.execute("select %s::int", [i]).fetchone() == (i,)
                    c.commit()
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [threading.Thread(target=work) for _ in range(20)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(40)
    stop.set()
    sampler.join()
    assert errors == []
    assert 1 <= peak[0] <= 3


def admin_servers(s, db="appdb", user="app"):
    """SHOW SERVERS rows (as dicts) of one pool, from the admin console."""
    return [r for r in admin_show(s, "SERVERS") if r["database"] == db and r["user"] == user]


@pytest.mark.timeout(30)
def test_two_clients_alternate_on_pool_of_one(sluice):
    s = sluice({"default_pool_size": 1})
    a, b = s.connect(autocommit=False), s.connect(autocommit=False)
    seen = set()  # backend pids the pooler had open, looked at inside each transaction
    try:
        for i in range(5):
            assert a.execute("select 1").fetchone() == (1,)
            held = s.backends()
            assert len(held) == 1, f"pool of one has {len(held)} servers while a holds one: {held}"
            seen.update(x.pid for x in held)
            a.commit()
            assert b.execute("select 2").fetchone() == (2,)
            held = s.backends()
            assert len(held) == 1, f"pool of one has {len(held)} servers while b holds one: {held}"
            seen.update(x.pid for x in held)
            b.commit()
    finally:
        a.close()
        b.close()
    assert len(seen) == 1, f"the two clients of a pool of one ran on backends {seen}"
    servers = admin_servers(s)
    assert [r["remote_pid"] for r in servers] == list(seen), servers


@pytest.mark.timeout(30)
def test_session_mode_resets_server(sluice, pg):
    s = sluice({"pool_mode": "session", "default_pool_size": 1})
    with s.connect() as c:
        c.execute("set search_path = nowhere")
        c.execute("create temp table t_session_tmp(a int)")
        assert c.execute("show search_path").fetchone() == ("nowhere",)
        pid = c.info.backend_pid
    with s.connect() as c:
        assert c.info.backend_pid == pid  # the same server, reused
        assert c.execute("show search_path").fetchone() == ('"$user", public',)
        assert c.execute("select count(*) from pg_class where relname = 't_session_tmp'").fetchone() == (0,)


@pytest.mark.timeout(60)
def test_pgbench_100_clients_pool_10(sluice, pg):
    s = sluice({"default_pool_size": 10, "max_client_conn": 200})
    env = {"PGPASSWORD": "apppass", "PATH": "/usr/bin:/bin"}
    try:
        r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "app",
                            "appdb"], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["pgbench", "-n", "-S", "-c", "100", "-j", "2", "-T", "8", "-h", "127.0.0.1", "-p",
                            str(s.port), "-U", "app", "appdb"], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "number of failed transactions: 0" in r.stdout or "failed" not in r.stdout
        assert len(pg.backends(user="app", db="appdb")) <= 10
    finally:
        pg.sql("DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
               db="appdb")


@pytest.mark.timeout(30)
def test_server_idle_timeout(sluice, pg):
    s = sluice({"server_idle_timeout": 1})
    with s.connect() as c:
        c.execute("select 1")
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    assert wait_until(lambda: pid not in [b.pid for b in pg.backends()], timeout=5)


@pytest.mark.timeout(30)
def test_server_lifetime(sluice, pg):
    s = sluice({"server_lifetime": 1, "server_lifetime_jitter": 0})
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        time.sleep(1.5)
        c.execute("select 1")  # still served; the old server closes once idle
    assert wait_until(lambda: pid not in [b.pid for b in pg.backends()], timeout=5)


@pytest.mark.timeout(30)
def test_client_idle_timeout(sluice):
    s = sluice({"client_idle_timeout": 1})
    c = s.connect()
    c.execute("select 1")
    time.sleep(2)
    with pytest.raises(Exception):
        c.execute("select 1")
    c.close()


@pytest.mark.timeout(30)
def test_dead_idle_server_not_handed_out(sluice, pg):
    s = sluice({"default_pool_size": 1})
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        pg.terminate(pid)
        time.sleep(0.3)
        assert c.execute("select 7").fetchone() == (7,)
        assert c.execute("select pg_backend_pid()").fetchone()[0] != pid
    assert "idle" in s.log()


@pytest.mark.timeout(30)
def test_pool_size_per_database_entry(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb pool_size=2"})
    conns = [s.connect(autocommit=False) for _ in range(4)]
    for c in conns[:2]:
        c.execute("select 1")
    assert len(pg.backends(user="app", db="appdb")) == 2
    for c in conns:
        c.close()


@pytest.mark.timeout(30)
def test_max_db_connections_and_eviction(sluice, pg):
    s = sluice({"max_db_connections": 1, "query_wait_timeout": 3})
    a = s.connect(autocommit=False)
    a.execute("select 1")
    # trustuser's pool must wait: the database's only slot is app's.
    t0 = time.time()
    b = None

    def late_commit():
        time.sleep(1)
        a.commit()

    threading.Thread(target=late_commit).start()
    b = s.connect(user="trustuser")
    # app's idle server is closed to make room, and trustuser gets one.
    assert b.execute("select current_user").fetchone() == ("trustuser",)
    assert time.time() - t0 < 3
    assert wait_until(lambda: [x.usename for x in pg.backends(db="appdb")] == ["trustuser"], timeout=2), \
        f"expected appdb's only server to be trustuser's, app's evicted: {pg.backends(db='appdb')}"
    assert len([x for x in pg.backends() if x[2] == "appdb"]) <= 1
    a.close()
    b.close()
