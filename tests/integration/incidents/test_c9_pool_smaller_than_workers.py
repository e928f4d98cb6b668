"""The incident: a pool of 30 below the web framework's 40 threads, and a
job queue whose settings multiplied to 100 concurrent handlers on that
pool of 30.

What pgsluice must do: queue the clients that find no server fairly (first
come, first served) with a bounded wait that ends in a clear 53300 naming
the pool and its figures; with `max_waiting_clients`, refuse at once
instead of letting everyone time out (counted in
pgsluice_refused_clients_total); and with max_db_connections /
max_user_connections keep one greedy workload from starving another.
"""
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import Threads, metric, sqlstate_of, wait_until
from incident_helpers import PeakBackends, assert_counts_agree, http_config, metrics, not_idle_in_transaction, pool_row

POOL = 30
THREADS = 40
HANDLERS = 100
WEB_QUERIES = 20


def hold_every_server(s, n=POOL):
    """n clients, each inside a transaction on its own server."""
    holders = []
    for _ in range(n):
        c = s.connect(autocommit=False)
        c.execute("select 1")
        holders.append(c)
    assert len(s.backends(state="idle in transaction")) == n
    return holders


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_the_ten_threads_beyond_the_pool_are_served_in_arrival_order(sluice, mode):
    """Web threads 31..40 find every server taken; as servers come back one
    at a time, each goes to the thread that has waited longest. In session
    mode the threads wait at login, in transaction mode at their query."""
    s = sluice(http_config(pool_mode=mode, default_pool_size=POOL, query_wait_timeout="10s"))
    holders = hold_every_server(s)
    waiters, order = [], []
    lock = threading.Lock()

    def await_server(k, c):
        if mode == "session":
            c.finish_login("app", timeout=15)  # the login completes once a server is assigned
        else:
            r = c.read_result(timeout=15)
            assert r.errors == [] and r.status == "T", r  # ends inside a transaction: keeps its server
        with lock:
            order.append(k)

    th = Threads(join_timeout=20)
    try:
        for k in range(THREADS - POOL):  # arrive one after the other, in a known order
            c = pgwire.Conn.open(s.port)
            waiters.append(c)
            if mode == "session":
                c.send(pgwire.startup_packet({"user": "app", "database": "appdb"}))
            else:
                c.startup("app", "appdb")
                c.send(pgwire.query(f"begin; select {k}"))
            assert wait_until(lambda: pool_row(s)["cl_waiting"] == k + 1, timeout=5), pool_row(s)
            th.start(await_server, k, c)
            # Waiters that queue within 0.25 ms of each other count as arriving
            # together (docs/architecture.md); these arrive one after the other.
            time.sleep(0.005)
        for j, h in enumerate(holders[:len(waiters)]):
            t0 = time.monotonic()
            h.close() if mode == "session" else h.commit()  # one server comes back
            assert wait_until(lambda: len(order) > j, timeout=5), f"no waiter got the server released by holder {j}"
            assert time.monotonic() - t0 < 2.0
            assert pool_row(s)["cl_waiting"] == len(waiters) - j - 1, "one server released, more than one served"
        th.join()
        assert order == list(range(len(waiters))), f"served in order {order}, arrival order was 0..9"
        m = metrics(s)
        assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
        print(f"\n{mode}: {len(waiters)} waiters served in arrival order {order}")
    finally:
        for w in waiters:
            w.close()
        for h in holders:
            h.close()
    assert wait_until(lambda: not not_idle_in_transaction(s), timeout=3)
    assert assert_counts_agree(s) <= POOL


def run_handlers(s, n, sql):
    """n handlers, connected beforehand, each running sql once at the same
    time; returns (latencies of the served, [(latency, error)])."""
    conns = [s.connect() for _ in range(n)]
    start = threading.Barrier(n, timeout=30)
    ok, failed = [], []
    lock = threading.Lock()

    def handler(c):
        start.wait()
        t0 = time.monotonic()
        try:
            c.execute(sql)
            with lock:
                ok.append(time.monotonic() - t0)
        except psycopg.Error as e:
            with lock:
                failed.append((time.monotonic() - t0, e))

    try:
        with Threads(join_timeout=60) as th:
            for c in conns:
                th.start(handler, c)
    except BaseException:
        for c in conns:
            c.close()
        raise
    return ok, failed, conns


@pytest.mark.timeout(90)
def test_job_queue_of_100_handlers_on_a_pool_of_30(sluice):
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, query_wait_timeout="5s",
                           max_client_conn=300))
    peak = PeakBackends(s)
    peak.start()
    conns = []
    try:
        # short jobs: the queue drains, everyone is served well within the bounded wait
        ok, failed, conns = run_handlers(s, HANDLERS, "select pg_sleep(0.2)")
        assert not failed, failed[:3]
        assert len(ok) == HANDLERS
        worst_short = max(ok)
        assert worst_short < 4.0, f"a short job waited {worst_short:.2f}s"
        for c in conns:
            c.close()
        # long jobs and a tight wait: those that cannot get a server within 0.5 s are told so, fast
        with s.connect(user="postgres", db="pgsluice") as admin:
            admin.execute("SET query_wait_timeout = '500ms'")
        ok, failed, conns = run_handlers(s, HANDLERS, "select pg_sleep(1.5)")
    finally:
        backends_peak = peak.finish()
    try:
        assert len(ok) + len(failed) == HANDLERS
        assert len(ok) >= POOL and failed, (len(ok), len(failed))
        for took, e in failed:
            assert sqlstate_of(e) == "53300", e
            msg = str(e)
            assert "pool app/appdb saturated" in msg and f"pool_size={POOL} active={POOL}" in msg, msg
            assert 0.4 <= took < 2.0, f"a refused job waited {took:.2f}s with query_wait_timeout=0.5s"
        m = metrics(s)
        assert metric(m, "pgsluice_timeouts_total", database="appdb", kind="query_wait_timeout") == len(failed)
        assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
        # the refused handlers kept their connections: they retry once the burst is over
        retry = [c for c in conns if not c.closed][:10]
        for c in retry:
            assert c.execute("select 'retried'").fetchone() == ("retried",)
    finally:
        for c in conns:
            c.close()
    assert assert_counts_agree(s) <= POOL
    print(f"\nshort jobs: {HANDLERS} served, worst wait {worst_short:.2f}s; long jobs: {len(ok)} served, "
          f"{len(failed)} got 53300 after {min(t for t, _ in failed):.2f}..{max(t for t, _ in failed):.2f}s; "
          f"PostgreSQL peak {backends_peak} backends")


@pytest.mark.timeout(90)
def test_max_waiting_clients_refuses_at_once(sluice):
    """30 servers held, 10 threads queued (max_waiting_clients=10): the
    next 20 job handlers are refused at once, not after the wait."""
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, query_wait_timeout="20s",
                           max_waiting_clients=THREADS - POOL, max_client_conn=300))
    holders = hold_every_server(s)
    queued, refused_conns = [], []
    try:
        for k in range(THREADS - POOL):
            w = pgwire.connect(s.port)
            w.send(pgwire.query(f"select {k}"))
            queued.append(w)
        assert wait_until(lambda: pool_row(s)["cl_waiting"] == THREADS - POOL, timeout=5), pool_row(s)
        refusals = []
        for k in range(20):
            c = s.connect()
            refused_conns.append(c)
            t0 = time.monotonic()
            with pytest.raises(psycopg.Error) as e:
                c.execute("select 'one more job'")
            refusals.append(time.monotonic() - t0)
            assert sqlstate_of(e.value) == "53300", e.value
            assert "max_waiting_clients=10" in str(e.value) and "app/appdb" in str(e.value), str(e.value)
            assert not c.closed, "a refused client must keep its connection"
        worst = max(refusals)
        assert worst < 1.0, f"a refusal took {worst:.2f}s: it should not wait"
        m = metrics(s)
        assert metric(m, "pgsluice_refused_clients_total", database="appdb", reason="max_waiting_clients") == 20
        assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
        s.wait_log(r"WARNING C-\d+ appdb/app@127\.0\.0\.1:\d+: refused: max_waiting_clients=10 reached")
        # the queue is served once servers come back, and the refused ones retry successfully
        for h in holders:
            h.commit()
        for k, w in enumerate(queued):
            r = w.read_result(timeout=5)
            assert r.errors == [] and r.rows == [(str(k),)], r
        for c in refused_conns:
            assert c.execute("select 'retry'").fetchone() == ("retry",)
        print(f"\n20 refusals, slowest {worst * 1000:.1f} ms; the 10 queued were served afterwards")
    finally:
        for x in queued + refused_conns + holders:
            x.close()
    assert assert_counts_agree(s) <= POOL


@pytest.mark.timeout(90)
def test_greedy_user_cannot_starve_another(sluice):
    """A batch job (user app) runs 30 concurrent long transactions against
    a database capped at 10 server connections; max_user_connections=6
    keeps 4 for the web (user trustuser), whose queries stay fast."""
    s = sluice(http_config(pool_mode="transaction", default_pool_size=10, max_db_connections=10,
                           query_wait_timeout="10s", max_client_conn=300),
               users={"app": "max_user_connections=6"})
    stop = threading.Event()
    job_errors, web_lat = [], []
    jobs_done = [0]
    lock = threading.Lock()
    peak_app, peak_all = PeakBackends(s, user="app"), PeakBackends(s)

    def greedy(i):
        with s.connect(application_name="batch") as c:
            while not stop.is_set():
                try:
                    c.execute("select pg_sleep(0.3)")
                    with lock:
                        jobs_done[0] += 1
                except psycopg.Error as e:
                    job_errors.append(e)
                    return

    def web(i):
        with s.connect(user="trustuser", application_name="web") as c:
            for q in range(WEB_QUERIES):  # spread over ~2 s of the batch job's run
                t0 = time.monotonic()
                c.execute("select %s::int", [q])
                with lock:
                    web_lat.append(time.monotonic() - t0)
                time.sleep(0.1)  # the web request's own work between queries

    peak_app.start()
    peak_all.start()
    try:
        with Threads(join_timeout=60) as th:
            for i in range(30):
                th.start(greedy, i)
            assert wait_until(lambda: (pool_row(s) or {}).get("cl_waiting", 0) >= 10, timeout=10), pool_row(s)
            web_threads = Threads(join_timeout=30)
            for i in range(3):
                web_threads.start(web, i)
            web_threads.join()
            stop.set()
    finally:
        stop.set()
        app_peak, all_peak = peak_app.finish(), peak_all.finish()
    assert not job_errors, job_errors[:3]
    assert len(web_lat) == 3 * WEB_QUERIES
    worst = max(web_lat)
    assert worst < 1.0, f"a web query waited {worst:.2f}s behind the batch job"
    assert app_peak <= 6, f"the batch user had {app_peak} backends (max_user_connections=6)"
    assert all_peak <= 10, f"the database had {all_peak} backends (max_db_connections=10)"
    assert jobs_done[0] > 0
    assert assert_counts_agree(s) <= 6
    assert assert_counts_agree(s, user="trustuser") <= 4
    print(f"\nbatch: {jobs_done[0]} jobs on at most {app_peak} backends; web: {len(web_lat)} queries, worst "
          f"{worst * 1000:.0f} ms; database peak {all_peak} backends")
