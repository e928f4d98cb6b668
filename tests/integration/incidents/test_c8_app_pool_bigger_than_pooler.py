"""The incident: an application pool of up to 120 connections in front of a
pgbouncer pool of 40 in session mode: 80 connections could never get a
server, while the application believed it had capacity.

What pgsluice must do: make the mismatch obvious (SHOW POOLS and /metrics
show clients waiting, how long, and the pool's size), give the clients
that cannot be served a bounded wait ending in 53300 whose message names
the pool and its figures, and, in transaction mode, serve the same load
entirely. Queries are short and everything is bounded to a few seconds.
"""
import re
import threading
import time

import psycopg
import psycopg_pool
import pytest

import pgwire
from helpers import Threads, metric, wait_until
from incident_helpers import (PeakBackends, assert_counts_agree, health, http_config, metrics, not_idle_in_transaction,
                              pool_row)

APP = 120
POOL = 40
WAIT = 2.0

SATURATED = re.compile(r"pgsluice: pool app/appdb saturated: waited (\d+\.\d)s for a server connection "
                       rf"\(pool_size={POOL} active={POOL} waiting=(\d+)\); see SHOW POOLS")


@pytest.mark.timeout(120)
def test_session_pool_of_40_behind_an_app_of_120(sluice, pg):
    s = sluice(http_config(pool_mode="session", default_pool_size=POOL, max_client_conn=400,
                           query_wait_timeout=f"{WAIT}s", health_max_wait="500ms"))
    done = threading.Event()
    lock = threading.Lock()
    served, failed = [], []

    def app_connection(i):
        t0 = time.monotonic()
        try:
            c = s.connect(application_name=f"app-{i}")
        except psycopg.OperationalError as e:
            with lock:
                failed.append((time.monotonic() - t0, str(e)))
            return
        with c:
            with lock:
                served.append(i)
            while not done.is_set():  # short queries for as long as the app runs
                c.execute("select 1")
                done.wait(0.05)

    peak = PeakBackends(s)
    peak.start()
    figures = {}
    try:
        with Threads(join_timeout=60) as th:
            for i in range(APP):
                th.start(app_connection, i)
            # the mismatch, as the pooler shows it: every server busy and clients queued behind them
            p = wait_until(lambda: (lambda r: r if r and r["cl_waiting"] >= 20 and r["sv_active"] == POOL else None)(
                pool_row(s)), timeout=10)
            assert p, f"the pool never showed clients waiting: {pool_row(s)}"
            m = metrics(s)
            figures = {"cl_waiting": p["cl_waiting"], "sv_active": p["sv_active"], "pool_size": p["pool_size"],
                       "waiting_metric": metric(m, "pgsluice_clients", database="appdb", state="waiting"),
                       "pool_size_metric": metric(m, "pgsluice_pool_size", database="appdb")}
            assert figures["pool_size"] == POOL and figures["pool_size_metric"] == POOL, figures
            assert figures["waiting_metric"] >= 1, figures
            # health: a client has waited longer than health_max_wait
            assert wait_until(lambda: health(s)[0] == 503, timeout=WAIT), health(s)
            doc = health(s)[1]
            bad = [x for x in doc["pools"] if not x["healthy"]]
            assert doc["status"] == "unhealthy" and bad and bad[0]["database"] == "appdb", doc
            assert "health_max_wait" in bad[0]["reasons"][0] and f"pool_size={POOL}" in bad[0]["reasons"][0], bad
            # a raw client sees the exact SQLSTATE (libpq drops it on a failed connect)
            raw = pgwire.login_error(s.port, timeout=WAIT + 5)
            assert raw["C"] == "53300" and raw["V"] == "FATAL" and SATURATED.search(raw["M"]), raw
            # everyone not served has its answer by the wait timeout
            assert wait_until(lambda: len(served) + len(failed) == APP, timeout=WAIT + 8), \
                f"{len(served)} served, {len(failed)} failed, {APP - len(served) - len(failed)} without an answer"
            done.set()
    finally:
        done.set()
        backends_peak = peak.finish()
    assert len(served) == POOL, f"{len(served)} sessions got a server from a session pool of {POOL}"
    assert len(failed) == APP - POOL
    worst = max(t for t, _ in failed)
    for took, msg in failed:
        assert SATURATED.search(msg), f"error without the pool's figures: {msg}"
        assert WAIT - 0.5 <= took <= WAIT + 5, f"a client got its error after {took:.2f}s (query_wait_timeout={WAIT}s)"
    assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
    m = metrics(s)
    assert metric(m, "pgsluice_timeouts_total", database="appdb", kind="query_wait_timeout") == APP - POOL + 1
    assert wait_until(lambda: health(s)[0] == 200, timeout=5), health(s)
    assert not not_idle_in_transaction(s)
    assert assert_counts_agree(s) <= POOL
    print(f"\nsession: {len(served)} served, {len(failed)} got 53300 after {min(t for t, _ in failed):.2f}.."
          f"{worst:.2f}s; while saturated SHOW POOLS cl_waiting={figures['cl_waiting']} sv_active="
          f"{figures['sv_active']} pool_size={figures['pool_size']}; PostgreSQL peak {backends_peak} backends")


@pytest.mark.timeout(120)
def test_same_app_in_transaction_mode_is_all_served(sluice, pg):
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, max_client_conn=400,
                           query_wait_timeout=f"{WAIT}s"))
    app = psycopg_pool.ConnectionPool(s.dsn(application_name="app"), min_size=APP, max_size=APP, timeout=10,
                                      num_workers=4, kwargs={"autocommit": True, "prepare_threshold": None})
    lat = []
    lock = threading.Lock()

    def request(i):
        with app.connection() as c:  # each request takes its own app connection and keeps it a while
            for q in range(10):
                t0 = time.monotonic()
                c.execute("select %s::int, pg_sleep(0.01)", [q])
                with lock:
                    lat.append(time.monotonic() - t0)

    peak = PeakBackends(s)
    try:
        app.wait(timeout=60)
        assert app.get_stats()["pool_size"] == APP
        peak.start()
        t0 = time.monotonic()
        with Threads(join_timeout=60) as th:
            for i in range(APP):
                th.start(request, i)
        elapsed = time.monotonic() - t0
    finally:
        backends_peak = peak.finish()
        app.close(timeout=5)
    assert len(lat) == APP * 10
    assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
    m = metrics(s)
    assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
    assert metric(m, "pgsluice_queries_total", database="appdb", user="app") >= APP * 10
    assert max(lat) < WAIT, f"a query waited {max(lat):.2f}s"
    assert assert_counts_agree(s) <= POOL
    print(f"\ntransaction: {APP} app connections x 10 queries on {POOL} servers in {elapsed:.2f}s, no errors; "
          f"worst query latency {max(lat) * 1000:.0f} ms; PostgreSQL peak {backends_peak} backends")
