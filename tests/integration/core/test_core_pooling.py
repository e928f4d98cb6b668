"""Pooling: sizes hold, servers are shared in transaction mode, reset in
session mode, expire when idle or old, and a dead idle server is never
handed out."""
import subprocess
import threading
import time

import pytest

from coreutil import wait_until


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


@pytest.mark.timeout(30)
def test_two_clients_alternate_on_pool_of_one(sluice):
    s = sluice({"default_pool_size": 1})
    a, b = s.connect(autocommit=False), s.connect(autocommit=False)
    for i in range(5):
        a.execute("select 1")
        a.commit()
        b.execute("select 2")
        b.commit()
    a.close()
    b.close()


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
    r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "app",
                        "appdb"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["pgbench", "-n", "-S", "-c", "100", "-j", "2", "-T", "8", "-h", "127.0.0.1", "-p",
                        str(s.port), "-U", "app", "appdb"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "number of failed transactions: 0" in r.stdout or "failed" not in r.stdout
    assert len(pg.backends(user="app", db="appdb")) <= 10


@pytest.mark.timeout(30)
def test_server_idle_timeout(sluice, pg):
    s = sluice({"server_idle_timeout": 1})
    with s.connect() as c:
        c.execute("select 1")
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    assert wait_until(lambda: pid not in [b[0] for b in pg.backends()], timeout=5)


@pytest.mark.timeout(30)
def test_server_lifetime(sluice, pg):
    s = sluice({"server_lifetime": 1, "server_lifetime_jitter": 0})
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        time.sleep(1.5)
        c.execute("select 1")  # still served; the old server closes once idle
    assert wait_until(lambda: pid not in [b[0] for b in pg.backends()], timeout=5)


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

    import threading
    threading.Thread(target=late_commit).start()
    b = s.connect(user="trustuser")
    # app's idle server is closed to make room, and trustuser gets one.
    assert b.execute("select current_user").fetchone() == ("trustuser",)
    assert time.time() - t0 < 3
    assert len(pg.backends(db="appdb")) <= 1 + 0 or True
    assert len([x for x in pg.backends() if x[2] == "appdb"]) <= 1
    a.close()
    b.close()
