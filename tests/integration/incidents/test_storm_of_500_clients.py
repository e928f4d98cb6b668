"""The incident: a thundering herd at start-up. Many workers asked an empty
pool for connections at the same instant with a short timeout; the failed
attempts left "phantom" slots behind (the pool counted 30 connections, the
server had 2).

What pgsluice must do: against a cold pooler, 500 clients connecting at
once (asyncio, psycopg's AsyncConnection) are all served, or, with a short
wait timeout, get 53300 (never a connection error); PostgreSQL never sees
more backends from the pooler than the pool allows, new server connections
are paced (`server_connect_concurrency`), and after the storm the pooler's
count of its servers (SHOW POOLS and /metrics) equals what
pg_stat_activity shows: no phantom slots.
"""
import asyncio
import resource
import time

import psycopg
import pytest

from helpers import metric, sqlstate_of, wait_until
from incident_helpers import PeakBackends, assert_counts_agree, http_config, metrics, not_idle_in_transaction, pool_row

CLIENTS = 500
POOL = 20


def enough_files(n):
    """Raise this process's RLIMIT_NOFILE: each client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n)) if hard != resource.RLIM_INFINITY else max(soft, n)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= n, "not enough file descriptors for the storm"


async def storm(s, sql, n=CLIENTS, user="app"):
    """n clients connect at the same instant and run sql twice each.
    Returns per-client (seconds, None | exception)."""
    go = asyncio.Event()

    async def one(i):
        await go.wait()
        t0 = time.monotonic()
        try:
            c = await psycopg.AsyncConnection.connect(s.dsn(user, application_name=f"worker-{i}", connect_timeout=30),
                                                      autocommit=True, prepare_threshold=None)
        except psycopg.Error as e:
            return time.monotonic() - t0, ("connect", e)
        try:
            for _ in range(2):
                await c.execute(sql)
            return time.monotonic() - t0, None
        except psycopg.Error as e:
            return time.monotonic() - t0, ("query", e)
        finally:
            await c.close()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.sleep(0)
    go.set()
    return await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)


@pytest.mark.timeout(150)
def test_500_clients_at_once_on_a_cold_pool_of_20(sluice, pg):
    enough_files(CLIENTS + 200)
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, max_client_conn=CLIENTS + 100,
                           query_wait_timeout="60s", server_connect_concurrency=4))
    assert s.backends() == [], "the pooler should start cold"
    peak = PeakBackends(s)
    peak.start()
    try:
        t0 = time.monotonic()
        results = asyncio.run(storm(s, "select pg_sleep(0.02)"))
        elapsed = time.monotonic() - t0
    finally:
        backends_peak = peak.finish()
    failures = [(t, e) for t, e in results if e is not None]
    assert not failures, f"{len(failures)} clients failed, e.g. {failures[:3]}"
    worst = max(t for t, _ in results)
    assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
    m = metrics(s)
    assert metric(m, "pgsluice_queries_total", database="appdb", user="app") >= 2 * CLIENTS
    assert metric(m, "pgsluice_server_connect_failures_total", database="appdb") == 0
    assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
    assert wait_until(lambda: (lambda p: p["cl_waiting"] == 0 and p["cl_active"] == 0 and p["sv_login"] == 0)(
        pool_row(s)), timeout=5), pool_row(s)
    assert not not_idle_in_transaction(s)
    n = assert_counts_agree(s)
    assert 1 <= n <= POOL
    print(f"\n{CLIENTS} clients at once: all served in {elapsed:.2f}s, slowest client {worst:.2f}s; PostgreSQL "
          f"peak {backends_peak} backends; {n} servers afterwards, SHOW POOLS / metrics / pg_stat_activity agree")


@pytest.mark.timeout(150)
def test_storm_with_a_short_wait_gets_53300_and_leaves_no_phantom_slots(sluice, pg):
    """The incident's version: a short timeout (1 s) and work that cannot
    all fit in it. Those that do not get a server get 53300, never a
    connection error, and no slot stays counted for them."""
    enough_files(CLIENTS + 200)
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, max_client_conn=CLIENTS + 100,
                           query_wait_timeout="1s", server_connect_concurrency=4))
    peak = PeakBackends(s)
    peak.start()
    try:
        t0 = time.monotonic()
        results = asyncio.run(storm(s, "select pg_sleep(0.1)"))
        elapsed = time.monotonic() - t0
    finally:
        backends_peak = peak.finish()
    served = [t for t, e in results if e is None]
    refused = [(t, where, e) for t, x in results if x is not None for where, e in [x]]
    others = [(t, where, e) for t, where, e in refused if sqlstate_of(e) != "53300"
              and "saturated" not in str(e)]
    assert not others, f"{len(others)} clients got something else than 53300: {others[:3]}"
    assert served and refused, (len(served), len(refused))
    for t, where, e in refused:
        assert "pool app/appdb saturated" in str(e) and f"pool_size={POOL}" in str(e), str(e)
    assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
    m = metrics(s)
    wait_timeouts = metric(m, "pgsluice_timeouts_total", database="appdb", kind="query_wait_timeout")
    assert wait_timeouts == len(refused), (wait_timeouts, len(refused))
    assert wait_until(lambda: (lambda p: p["cl_waiting"] == 0 and p["cl_active"] == 0 and p["sv_login"] == 0)(
        pool_row(s)), timeout=5), pool_row(s)
    assert not not_idle_in_transaction(s)
    n = assert_counts_agree(s)
    assert 1 <= n <= POOL
    # the pool works normally afterwards, on the servers it has
    with s.connect() as c:
        assert c.execute("select 'after the storm'").fetchone() == ("after the storm",)
    at_login = sum(1 for _, where, _ in refused if where == "connect")
    print(f"\nshort wait: {len(served)} served, {len(refused)} got 53300 ({at_login} at login) in {elapsed:.2f}s; "
          f"PostgreSQL peak {backends_peak} backends; {n} servers afterwards, counts agree")


@pytest.fixture
def limited_role(pg):
    """A role PostgreSQL accepts at most LIMIT connections of, dropped after the test."""
    role = "storm_limited"
    pg.sql(f"DROP ROLE IF EXISTS {role}")
    pg.sql(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {LIMIT}")
    yield role
    pg.sql(f"DROP ROLE IF EXISTS {role}")


LIMIT = 5


@pytest.mark.timeout(150)
def test_storm_against_a_server_that_refuses_connections_leaves_no_phantom_slots(sluice, pg, limited_role):
    """The server will only take 5 connections for this role (CONNECTION
    LIMIT), the pool may open 20: most of the pooler's connects fail with
    PostgreSQL's own refusal. Each failed connect frees its slot at once:
    the clients are served by the servers that exist, and the pooler counts
    exactly the connections PostgreSQL has, never the failed attempts."""
    enough_files(CLIENTS + 200)
    role = limited_role
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, max_client_conn=CLIENTS + 100,
                           query_wait_timeout="30s", server_connect_concurrency=4))
    peak = PeakBackends(s, user=role)
    peak.start()
    try:
        t0 = time.monotonic()
        results = asyncio.run(storm(s, "select pg_sleep(0.01)", user=role))
        elapsed = time.monotonic() - t0
    finally:
        backends_peak = peak.finish()
    failures = [(t, e) for t, e in results if e is not None]
    # all served by the servers PostgreSQL did accept (or, at worst, told PostgreSQL's own reason)
    for t, (where, e) in failures:
        assert "too many connections for role" in str(e), f"{where}: {e}"
    served = len(results) - len(failures)
    assert served >= CLIENTS * 0.9, f"only {served} of {CLIENTS} served; e.g. {failures[:3]}"
    assert backends_peak <= LIMIT
    m = metrics(s)
    refused_connects = metric(m, "pgsluice_server_connect_failures_total", database="appdb", user=role)
    assert refused_connects >= 1, "the server refused no connection: the test did not reproduce anything"
    p = pool_row(s, user=role)
    assert "too many connections for role" in p["last_connect_error"], p
    assert p["server_status"] == "ok", p  # it has servers: reachable, only limited
    n = assert_counts_agree(s, user=role)
    assert n == LIMIT, f"the pooler and PostgreSQL agree on {n} servers; PostgreSQL allows {LIMIT}"
    assert wait_until(lambda: (lambda p: p["cl_waiting"] == 0 and p["sv_login"] == 0)(
        pool_row(s, user=role)), timeout=5), pool_row(s, user=role)
    print(f"\nconnection limit {LIMIT}: {served} of {CLIENTS} served in {elapsed:.2f}s, {len(failures)} errors; "
          f"{refused_connects:.0f} refused server connects; {n} servers counted = pg_stat_activity")


@pytest.mark.timeout(150)
def test_refused_connects_wait_server_login_retry(sluice, pg, limited_role):
    """After failed connects the pool backs off (250 ms doubling up to
    server_login_retry) before trying again, so a storm cannot hammer a
    server that is refusing connections. With
    server_login_retry=2s and at most 4 connects at once, a storm of a few
    seconds may make a few dozen attempts at most."""
    enough_files(CLIENTS + 200)
    retry = 2.0
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, max_client_conn=CLIENTS + 100,
                           query_wait_timeout="30s", server_connect_concurrency=4, server_login_retry=f"{retry}s"))
    t0 = time.monotonic()
    results = asyncio.run(storm(s, "select pg_sleep(0.01)", user=limited_role))
    elapsed = time.monotonic() - t0
    for t, x in results:
        assert x is None or "too many connections for role" in str(x[1]), x
    attempts = metric(metrics(s), "pgsluice_server_connect_failures_total", database="appdb", user=limited_role)
    bound = 4 * (elapsed / retry + 1) + 8
    assert attempts <= bound, (f"{attempts:.0f} refused server connects in {elapsed:.1f}s "
                               f"(server_login_retry={retry}s, server_connect_concurrency=4: at most ~{bound:.0f})")
