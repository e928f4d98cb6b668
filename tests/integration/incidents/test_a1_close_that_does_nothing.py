"""The incident: an application's close() did not return its connection, so
the pool still counted the slot as taken and ran dry after about 30 requests.

What pgsluice must do: whatever way a client goes away (close, a crashed
process, a half-close, a reset socket, a client that gives up on a query),
its server connection is rolled back and returned at once, whatever state
it was in. Each test here has many more departures than the pool has
servers, so a single slot that did not come back would stall the next
client; it checks that nothing is left idle in a transaction on PostgreSQL,
that nothing the departed clients did was committed, that the pooler's
count of its servers equals PostgreSQL's, and that the rollbacks are
counted in /metrics.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psycopg_pool
import pytest

import pgwire
from helpers import create_table, metric, wait_until
from incident_helpers import assert_counts_agree, http_config, metrics, not_idle_in_transaction

POOL = 3


def served_within(s, seconds, what):
    """A fresh client gets a server (a transaction that really runs on one)
    within seconds; returns how long it took."""
    t0 = time.monotonic()
    with s.connect() as c:
        with c.transaction():
            c.execute("select pg_backend_pid()")
    took = time.monotonic() - t0
    assert took < seconds, f"{what}: the next client waited {took:.2f}s for a server"
    return took


@pytest.mark.timeout(90)
def test_app_pool_wrapper_closes_instead_of_returning(sluice, pg, table):
    """psycopg_pool in the app; a wrapper whose "release" closes the
    connection instead of giving it back (and never commits). The app pool
    runs dry after max_size requests, exactly as in the incident; the
    pooler's servers do not: each close returns its server at once."""
    create_table(pg, table)
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, query_wait_timeout="5s"))
    rounds, app_max = 3, 10
    worst = 0.0
    for r in range(rounds):  # the app is restarted after each outage, as in the incident
        app = psycopg_pool.ConnectionPool(s.dsn(), min_size=0, max_size=app_max, timeout=1.0,
                                          kwargs={"autocommit": False, "prepare_threshold": None})
        try:
            app.wait(timeout=10)
            for i in range(app_max):
                conn = app.getconn()
                conn.execute(f"insert into {table} values (%s)", [r * 100 + i])  # opens a transaction
                conn.close()  # the bug: "closed", never handed back to the app pool, never committed
                assert not not_idle_in_transaction(s), "a closed client's transaction is still open"
                worst = max(worst, served_within(s, 2.0, f"after close {r * app_max + i + 1}"))
            # the reproduction: the application's own pool believes every slot is taken
            with pytest.raises(psycopg_pool.PoolTimeout):
                app.getconn(timeout=0.5)
        finally:
            app.close(timeout=1)
    departures = rounds * app_max
    assert departures >= 10 * POOL
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)], "a closed client's insert was committed"
    assert not not_idle_in_transaction(s)
    m = metrics(s)
    assert metric(m, "pgsluice_release_rollbacks_total", database="appdb", user="app") >= departures
    assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
    assert assert_counts_agree(s) <= POOL
    print(f"\n{departures} closes inside a transaction; worst wait of the next client {worst * 1000:.0f} ms")


APP_PROCESS = textwrap.dedent("""
    import sys, time, psycopg_pool
    dsn, table, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    pool = psycopg_pool.ConnectionPool(dsn, min_size=0, max_size=n, timeout=5,
                                       kwargs={"autocommit": False, "prepare_threshold": None})
    held = []
    for i in range(n):
        c = pool.getconn()
        c.execute(f"insert into {table} values (%s)", [tag * 100 + i])
        held.append(c)
    print("READY", flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_app_processes_killed_while_holding_transactions(sluice, pg, table, mode):
    """App worker processes (psycopg_pool inside) hold every server of the
    pool in open transactions and are killed with SIGKILL; the next worker
    process gets all the servers at once."""
    create_table(pg, table)
    s = sluice(http_config(pool_mode=mode, default_pool_size=POOL, query_wait_timeout="5s"))
    before = metric(metrics(s), "pgsluice_release_rollbacks_total", database="appdb", user="app")
    procs = 5
    worst = 0.0
    for k in range(procs):
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-c", APP_PROCESS, s.dsn(), table, str(POOL), str(k)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            line = p.stdout.readline()  # bounded: the pooler's query_wait_timeout and the app's 5 s pool timeout
            if line.strip() != "READY":
                p.wait(5)
                pytest.fail(f"app process {k} did not get {POOL} servers: {line!r}\n{p.stderr.read()}")
            took = time.monotonic() - t0
            worst = max(worst, took)
            assert wait_until(lambda: len(s.backends(state="idle in transaction")) == POOL, timeout=5), s.backends()
        finally:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            p.stdout.close()
            p.stderr.close()
        assert wait_until(lambda: not not_idle_in_transaction(s), timeout=2), \
            f"a killed process's transaction was not rolled back: {not_idle_in_transaction(s)}"
    crashed = procs * POOL
    assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
    served_within(s, 2.0, "after the last crash")
    m = metrics(s)
    assert metric(m, "pgsluice_release_rollbacks_total", database="appdb", user="app") - before >= crashed
    assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
    assert assert_counts_agree(s) <= POOL
    print(f"\n{mode}: {crashed} connections of killed processes; slowest process start "
          f"(python, psycopg_pool, {POOL} servers) {worst:.2f}s")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_half_close_reset_and_given_up_queries(sluice, pg, table, mode):
    """Raw sockets, 12 each: FIN, half-close (shutdown of the sending side,
    socket still readable), RST, and a client that gives up while its query
    still runs (as a client-side timeout does), all inside a transaction,
    on a pool of 3."""
    create_table(pg, table)
    s = sluice(http_config(pool_mode=mode, default_pool_size=POOL, query_wait_timeout="5s"))
    half_closed = []
    per_way = 12
    worst = 0.0
    try:
        for how in ("fin", "half", "rst", "gave_up"):
            for i in range(per_way):
                t0 = time.monotonic()
                try:
                    c = pgwire.connect(s.port, timeout=5)
                    r = c.query(f"begin; insert into {table} values ({i})", timeout=5)
                except TimeoutError:
                    pytest.fail(f"{how} #{i}: no server within 5s: an abandoned server was not returned")
                worst = max(worst, time.monotonic() - t0)
                assert r.errors == [] and r.status == "T", r
                if how == "gave_up":
                    c.send(pgwire.query("select pg_sleep(30) /* given up */"))
                    assert wait_until(lambda: [b for b in s.backends() if "given up" in (b.query or "")
                                               and b.state == "active"], timeout=3)
                    c.close_abruptly("rst")
                else:
                    c.close_abruptly(how)
                if how == "half":
                    half_closed.append(c)
        assert wait_until(lambda: not not_idle_in_transaction(s) and not [
            b for b in s.backends() if b.state == "active"], timeout=5), s.backends()
        assert pg.sql(f"select count(*) from {table}", db="appdb") == [(0,)]
        worst = max(worst, served_within(s, 2.0, "after the last departure"))
        m = metrics(s)
        assert metric(m, "pgsluice_release_rollbacks_total", database="appdb", user="app") >= 3 * per_way
        assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
        assert assert_counts_agree(s) <= POOL
        print(f"\n{mode}: {4 * per_way} departures; worst time for a new client to get a server "
              f"{worst * 1000:.0f} ms")
    finally:
        for c in half_closed:
            c.close()


NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "node", "incident.js")


def run_node(mode, port, count, timeout=30):
    r = subprocess.run(["node", NODE_SCRIPT, mode, str(port), str(count)], capture_output=True, text=True,
                       timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"node printed nothing (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.returncode, json.loads(lines[-1])


@pytest.mark.timeout(90)
def test_node_service_that_dies_holding_its_clients(sluice, pg):
    """node-postgres: pool.connect() without release(), transactions open,
    then the process dies. Every server comes back rolled back."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 3, "query_wait_timeout": 10})
    for round_ in range(3):  # three times the pool's size in all
        rc, out = run_node("crash-holding", s.port, 3)
        assert rc == 3 and out.get("held") == 3, out
        assert wait_until(lambda: not [b for b in pg.backends() if b.state == "idle in transaction"], timeout=3), \
            f"round {round_}: {pg.backends()}"
    rc, out = run_node("slow-handlers", s.port, 6)
    assert rc == 0 and out["errors"] == [], out
    assert len(s.backends()) <= 3
