"""The incident: at start-up 15+ workers asked an empty pool for connections
at the same instant with a 2 s timeout; the failed attempts left "phantom"
slots (the pool counted 30 connections, the server had 2).

pgsluice pre-warms min_pool_size, opens at most server_connect_concurrency
connections at once per pool, frees a failed connect's slot at once and
backs off before retrying, and the count it reports always equals what
PostgreSQL sees."""
import re
import threading
import time

import psycopg
import pytest

from faults import Relay
from helpers import free_port, wait_until


def pool_row(s, db="appdb", user="app"):
    with s.connect(user="postgres", db="pgsluice") as c:
        cur = c.execute("SHOW POOLS")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    hits = [r for r in rows if r["database"] == db and r["user"] == user]
    return hits[0] if hits else None



@pytest.mark.timeout(60)
def test_min_pool_size_prewarms_before_any_client(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 10},
               databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app min_pool_size=4"})
    assert wait_until(lambda: len(s.backends()) == 4, timeout=5), s.backends()
    # the warm servers serve the first herd without a connect in its path
    errors = []

    def one():
        try:
            with s.connect(connect_timeout=5) as c:
                c.execute("select 1")
        except psycopg.Error as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert len(s.backends()) <= 10


@pytest.mark.timeout(60)
def test_herd_on_a_cold_pool_is_paced_by_server_connect_concurrency(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 20, "server_connect_concurrency": 3,
                "verbose": 1, "query_wait_timeout": 20})
    barrier = threading.Barrier(30)
    errors = []

    def one():
        try:
            barrier.wait(10)
            with s.connect(connect_timeout=10) as c:
                c.execute("select pg_sleep(0.05)")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    # replay the log: never more than 3 connects in flight at once
    in_flight, worst = set(), 0
    for m in re.finditer(r"S-(\d+) app/appdb: (connecting to|logged in|closing)", s.log()):
        if m.group(2) == "connecting to":
            in_flight.add(m.group(1))
        else:
            in_flight.discard(m.group(1))
        worst = max(worst, len(in_flight))
    assert 1 <= worst <= 3, worst
    row = pool_row(s)
    assert row["sv_login"] == 0
    servers = row["sv_active"] + row["sv_idle"] + row["sv_used"]
    assert servers == len(s.backends()) <= 20, (row, s.backends())


@pytest.mark.timeout(90)
def test_failed_connects_leave_no_phantoms_and_a_server_coming_back_is_found(sluice, pg):
    port = free_port()
    s = sluice({"pool_mode": "transaction", "default_pool_size": 10, "query_wait_timeout": 2,
                "server_login_retry": "1s", "server_connect_concurrency": 4},
               databases={"appdb": f"host=127.0.0.1 port={port} dbname=appdb"})
    errors, took = [], []
    barrier = threading.Barrier(15)

    def one():
        barrier.wait(10)
        t0 = time.monotonic()
        try:
            with s.connect(connect_timeout=10) as c:
                c.execute("select 1")
        except psycopg.Error as e:
            errors.append(str(e))
        took.append(time.monotonic() - t0)

    threads = [threading.Thread(target=one) for _ in range(15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 15
    # fast, and naming the cause, not a generic timeout
    assert max(took) < 2.0, max(took)
    assert all("refused" in e.lower() for e in errors), errors[:3]
    row = pool_row(s)
    assert row is not None and row["sv_login"] == 0 and row["sv_active"] + row["sv_idle"] + row["sv_used"] == 0, row
    assert row["server_status"] == "unreachable" and "refused" in row["last_connect_error"].lower()
    # the server comes back on that port: the next clients are served within seconds
    relay = Relay(pg.port, listen_port=port)
    try:
        t0 = time.monotonic()

        def served():
            try:
                with s.connect(connect_timeout=5) as c:
                    return c.execute("select 'back'").fetchone() == ("back",)
            except psycopg.Error:
                return False
        assert wait_until(served, timeout=10, interval=0.2)
        assert time.monotonic() - t0 < 5.0
        row = pool_row(s)
        assert row["server_status"] == "ok" and row["last_connect_error"] == ""
    finally:
        relay.close()
