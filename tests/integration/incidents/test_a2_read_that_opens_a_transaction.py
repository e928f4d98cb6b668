"""The incident: a SQLAlchemy service with autocommit off ran a periodic
`SELECT ... LIMIT 1` on a connection it kept, and never ended the
transaction the driver had opened: the connection sat "idle in transaction"
for the whole 30 s tick, holding a pool slot half of the time.

What pgsluice must do: see it (who, since when, last statement), warn
once, and after `idle_transaction_timeout` end it: roll back on the
server, return the server to the pool (not close it), and tell the client
why (25P03), which recovers with ROLLBACK. The job here is a SQLAlchemy
engine (psycopg2 driver, autocommit off, as the service ran it) whose tick
is shortened to a few seconds.
"""
import re
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa

from helpers import admin_show, create_table, metric, wait_until
from incident_helpers import assert_counts_agree, http_config, metrics, not_idle_in_transaction

LEAK_WARN = 0.5
IDLE_TXN = 2.0


def engine_for(s, **kw):
    url = f"postgresql+psycopg2://app@127.0.0.1:{s.port}/appdb"
    args = {"application_name": "ticker", "sslmode": "disable", "gssencmode": "disable", "connect_timeout": 5}
    return sa.create_engine(url, future=True, pool_size=1, max_overflow=0, connect_args=args, **kw)


def leak_lines(s):
    return re.findall(r"^.* WARNING C-\d+ appdb/app@127\.0\.0\.1:\d+: leak: .*$", s.log(), re.M)


@pytest.mark.timeout(60)
def test_periodic_select_left_idle_in_transaction(sluice, pg, table):
    create_table(pg, table, "id int primary key, payload text")
    pg.sql(f"insert into {table} values (1, 'next job')", db="appdb")
    s = sluice(http_config(pool_mode="transaction", default_pool_size=1, leak_warn_timeout=f"{LEAK_WARN}s",
                           idle_transaction_timeout=f"{IDLE_TXN}s", query_wait_timeout="10s"))
    engine = engine_for(s)
    web_result = {}
    try:
        conn = engine.connect()  # the job keeps its connection between ticks
        # tick 1: the read opens a transaction (autocommit off) that nobody ends
        row = conn.execute(sa.text(f"select id, payload from {table} order by id limit 1")).first()
        assert row == (1, "next job")
        held = s.backends(state="idle in transaction")
        assert len(held) == 1 and "limit 1" in held[0].query, s.backends()
        pid = held[0].pid

        # the rest of the service needs the pool's only server meanwhile
        def web_request():
            t0 = time.monotonic()
            with s.connect(application_name="web") as w:
                web_result["pid"] = w.execute("select pg_backend_pid()").fetchone()[0]
            web_result["waited"] = time.monotonic() - t0

        web = threading.Thread(target=web_request, daemon=True)
        web.start()

        # seen: who, since when, last statement
        rows = wait_until(lambda: admin_show(s, "LEAKS"), timeout=3)
        assert rows and len(rows) == 1, rows
        leak = rows[0]
        assert leak["application_name"] == "ticker" and leak["user"] == "app" and leak["database"] == "appdb"
        assert leak["xact_state"] == "in transaction" and leak["server_pid"] == pid
        assert float(leak["idle_for"]) >= LEAK_WARN and float(leak["held_for"]) >= float(leak["idle_for"])
        assert "limit 1" in leak["last_statement"] and leak["addr"] == "127.0.0.1"
        clients = [c for c in admin_show(s, "CLIENTS") if c["application_name"] == "ticker"]
        assert len(clients) == 1 and clients[0]["leak"] == "yes" and clients[0]["xact_state"] == "in transaction"
        # warned once, in one line that names it
        m = s.wait_log(r"WARNING C-\d+ appdb/app@127\.0\.0\.1:\d+: leak: application_name=ticker holds server "
                       rf"S-\d+ \(backend {pid}\) idle in transaction for [0-9.]+s \(linked [0-9.]+s ago, "
                       r"leak_warn_timeout=0\.5s\); last statement: select id, payload from \S+ order by id limit 1")
        assert m
        assert metric(metrics(s), "pgsluice_leak_warnings_total", database="appdb", user="app") == 1

        # ended at idle_transaction_timeout: rolled back, server returned (the waiting request gets it)
        s.wait_log(r"WARNING C-\d+ .*idle_transaction_timeout: application_name=ticker idle in transaction for "
                   rf"[0-9.]+s \(limit 2\.0s\) on backend {pid}: rolled back, server returned to the pool; "
                   r"last statement: select id, payload", timeout=IDLE_TXN + 4)
        web.join(10)
        assert web_result.get("pid") == pid, f"the server was not handed on: {web_result}"
        hold = web_result["waited"]
        assert IDLE_TXN - 1.0 < hold < IDLE_TXN + 3.0, \
            f"the web request waited {hold:.2f}s; the idle transaction should end at {IDLE_TXN}s"
        assert pid in [b.pid for b in pg.backends()], "the server was closed instead of returned to the pool"
        assert not not_idle_in_transaction(s)
        assert len(leak_lines(s)) == 1, f"the leak was reported more than once: {leak_lines(s)}"
        m = metrics(s)
        assert metric(m, "pgsluice_timeouts_total", database="appdb", kind="idle_transaction_timeout") == 1
        assert metric(m, "pgsluice_release_rollbacks_total", database="appdb", user="app") >= 1

        # tick 2: the job learns why (25P03), rolls back and goes on
        with pytest.raises(sa.exc.DBAPIError) as e:
            conn.execute(sa.text(f"select id from {table} order by id limit 1"))
        assert e.value.orig.pgcode == "25P03", e.value
        assert "idle_transaction_timeout=2.0s" in str(e.value.orig) and "rolled back" in str(e.value.orig)
        conn.rollback()
        assert conn.execute(sa.text(f"select payload from {table} order by id limit 1")).scalar() == "next job"
        conn.commit()  # the fix: end the read's transaction
        conn.close()
        assert admin_show(s, "LEAKS") == []
        assert not not_idle_in_transaction(s)
        assert assert_counts_agree(s) == 1
        print(f"\nleak seen {float(leak['idle_for']):.2f}s after the read; a waiting request got the server "
              f"after {hold:.2f}s (idle_transaction_timeout={IDLE_TXN}s); tick 2 got 25P03 and recovered")
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
def test_the_fixed_job_holds_nothing(sluice, pg, table):
    """The same periodic read with autocommit on (or ending its
    transaction): no leak is reported, the server is free between ticks."""
    create_table(pg, table, "id int primary key")
    pg.sql(f"insert into {table} values (1)", db="appdb")
    s = sluice(http_config(pool_mode="transaction", default_pool_size=1, leak_warn_timeout=f"{LEAK_WARN}s",
                           idle_transaction_timeout=f"{IDLE_TXN}s"))
    engine = engine_for(s, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for _ in range(3):
                assert conn.execute(sa.text(f"select id from {table} order by id limit 1")).scalar() == 1
                # between ticks another client gets the only server at once
                t0 = time.monotonic()
                with s.connect() as other:
                    other.execute("select 1")
                assert time.monotonic() - t0 < 1.0
                # proving that nothing is reported takes time: wait past leak_warn_timeout
                time.sleep(2 * LEAK_WARN)
                assert admin_show(s, "LEAKS") == []
        assert leak_lines(s) == []
        m = metrics(s)
        assert metric(m, "pgsluice_leak_warnings_total", database="appdb", user="app") == 0
        assert metric(m, "pgsluice_timeouts_total", kind="idle_transaction_timeout") == 0
    finally:
        engine.dispose()
    with psycopg.connect(s.dsn()) as c:
        assert c.execute("select 1").fetchone() == (1,)
