"""The incident: request handlers held their database connection across
slow outside calls (LLM and HTTPS requests of 1-10 s); each blocked handler
took one slot from a small pool until the pool was gone.

What pgsluice must do: in transaction mode, idle time between transactions
holds nothing, so many more handlers than servers are served while they
wait on the outside world outside a transaction; and when a handler does
hold a transaction open across the slow call, the hold-time histogram
(pgsluice_hold_seconds) and SHOW CLIENTS (application_name, held_for,
xact_state, last_statement) show who holds what and for how long.
"""
import json
import os
import re
import subprocess
import threading
import time

import psycopg_pool
import pytest

from helpers import Threads, admin_show, metric, wait_until
from incident_helpers import PeakBackends, assert_counts_agree, http_config, metrics, not_idle_in_transaction, pool_row

POOL = 3
SLOW_CALL = 1.5  # the outside call, scaled down from the incident's 1-10 s


@pytest.mark.timeout(90)
def test_slow_calls_between_transactions_hold_nothing(sluice, pg):
    """30 handlers (10x the pool) share an app pool of 30 connections;
    each runs a transaction, calls a slow outside service outside any
    transaction, then runs another transaction. If the wait held a server,
    30 handlers on 3 servers would take 15 s; here they overlap."""
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, query_wait_timeout="5s"))
    handlers = 10 * POOL
    app = psycopg_pool.ConnectionPool(s.dsn(application_name="handler"), min_size=handlers, max_size=handlers,
                                      timeout=10, kwargs={"autocommit": True, "prepare_threshold": None})
    waits = []
    lock = threading.Lock()

    def handler(i):
        with app.connection() as conn:  # the app holds its (pooler) connection for the whole request
            for step in range(2):
                t0 = time.monotonic()
                with conn.transaction():
                    conn.execute("select %s::int, pg_backend_pid()", [i])
                with lock:
                    waits.append(time.monotonic() - t0)
                if step == 0:
                    time.sleep(SLOW_CALL)  # the outside call, outside any transaction

    peak = PeakBackends(s)
    try:
        app.wait(timeout=30)
        peak.start()
        t0 = time.monotonic()
        with Threads(join_timeout=60) as th:
            for i in range(handlers):
                th.start(handler, i)
        elapsed = time.monotonic() - t0
    finally:
        backends_peak = peak.finish()
        app.close(timeout=5)
    serial = handlers * SLOW_CALL / POOL
    assert len(waits) == 2 * handlers
    assert elapsed < serial / 2, f"{handlers} handlers took {elapsed:.1f}s: idle time between transactions held servers"
    assert max(waits) < 2.0, f"a transaction waited {max(waits):.2f}s for a server"
    assert backends_peak <= POOL, f"PostgreSQL saw {backends_peak} backends from a pool of {POOL}"
    m = metrics(s)
    assert metric(m, "pgsluice_timeouts_total", kind="query_wait_timeout") == 0
    # every hold was one short transaction: nothing near the slow call's length
    assert metric(m, "pgsluice_hold_seconds_bucket", database="appdb", user="app", le="1") == \
        metric(m, "pgsluice_hold_seconds_count", database="appdb", user="app")
    assert assert_counts_agree(s) <= POOL
    print(f"\n{handlers} handlers x {SLOW_CALL}s outside calls on {POOL} servers in {elapsed:.2f}s "
          f"(serial would be {serial:.0f}s); worst transaction latency {max(waits) * 1000:.0f} ms; "
          f"PostgreSQL peak {backends_peak} backends")


@pytest.mark.timeout(90)
def test_holds_across_slow_calls_are_measured_and_attributed(sluice, pg):
    """Two handlers keep a transaction open across a slow call (the bug);
    twenty quick handlers still get the remaining server. The long holds
    land in pgsluice_hold_seconds, SHOW CLIENTS names the holders while
    they hold, and the stats line reports the worst hold."""
    s = sluice(http_config(pool_mode="transaction", default_pool_size=POOL, query_wait_timeout="5s",
                           stats_log_period="1s", leak_warn_timeout="10s"))
    holders, quick = 2, 20
    inside = threading.Barrier(holders + 1, timeout=10)
    release = threading.Event()
    quick_waits = []
    lock = threading.Lock()

    def slow_handler(i):
        with s.connect(application_name=f"llm-handler-{i}", autocommit=False) as c:
            c.execute("select 'prompt for request %s' /* before llm call */" % i)
            inside.wait()
            release.wait(10)  # the LLM call, inside the transaction
            c.commit()

    def quick_handler(i):
        t0 = time.monotonic()
        with s.connect(application_name="quick") as c:
            c.execute("select %s::int", [i])
        with lock:
            quick_waits.append(time.monotonic() - t0)

    with Threads(join_timeout=30) as th:
        for i in range(holders):
            th.start(slow_handler, i)
        inside.wait()
        t_hold = time.monotonic()
        # while they hold: who, since when, in which state, doing what
        def holding():
            rows = [r for r in admin_show(s, "CLIENTS") if r["application_name"].startswith("llm-handler")]
            return rows if len(rows) == holders and all(float(r["held_for"] or 0) >= 0.5 for r in rows) else None

        rows = wait_until(holding, timeout=5)
        assert rows, admin_show(s, "CLIENTS")
        for r in rows:
            assert r["xact_state"] == "in transaction" and r["state_detail"] == "active", r
            assert float(r["held_for"]) >= 0.5 and r["link"], r
            assert "before llm call" in r["last_statement"], r
        pids = {r["remote_pid"] for r in admin_show(s, "SERVERS") if r["link"] in {x["ptr"] for x in rows}}
        assert len(pids) == holders
        assert {b.pid for b in s.backends(state="idle in transaction")} == pids
        # the other handlers share the one server left
        for i in range(quick):
            th.start(quick_handler, i)
        assert wait_until(lambda: len(quick_waits) == quick, timeout=20), f"{len(quick_waits)} quick handlers done"
        p = pool_row(s)
        assert p["sv_active"] >= holders and p["cl_waiting"] == 0, p
        # hold the rest of the slow call, then let them commit
        remaining = SLOW_CALL + 0.5 - (time.monotonic() - t_hold)
        if remaining > 0:
            time.sleep(remaining)  # the outside call's own duration: nothing to wait on
        release.set()
    held = time.monotonic() - t_hold
    assert wait_until(lambda: not not_idle_in_transaction(s), timeout=3)
    m = metrics(s)
    lbl = {"database": "appdb", "user": "app"}
    total = metric(m, "pgsluice_hold_seconds_count", **lbl)
    under_1s = metric(m, "pgsluice_hold_seconds_bucket", le="1", **lbl)
    under_5s = metric(m, "pgsluice_hold_seconds_bucket", le="5", **lbl)
    assert total - under_1s == holders, f"holds over 1s: {total - under_1s} (histogram {total=} {under_1s=})"
    assert under_5s == total
    assert metric(m, "pgsluice_hold_seconds_sum", **lbl) >= holders * SLOW_CALL
    assert max(quick_waits) < 2.0, f"a quick handler waited {max(quick_waits):.2f}s"
    # the stats log line names the worst hold of its period
    def worst_logged():
        return max([float(x) for x in re.findall(r"INFO stats app/appdb: .*worst_hold=(\d+\.\d+)s", s.log())]
                   or [0.0])

    assert wait_until(lambda: worst_logged() >= SLOW_CALL, timeout=3), \
        f"no stats line showed a hold of {SLOW_CALL}s: worst_hold={worst_logged()}"
    worst = worst_logged()
    assert assert_counts_agree(s) <= POOL
    print(f"\n{holders} holds of {held:.2f}s seen in SHOW CLIENTS and pgsluice_hold_seconds; "
          f"{quick} quick handlers worst {max(quick_waits) * 1000:.0f} ms; stats worst_hold={worst:.3f}s")


NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "node", "incident.js")


@pytest.mark.timeout(90)
def test_node_handlers_awaiting_slow_calls_hold_nothing(sluice, pg):
    """node-postgres: 30 handlers at once, each awaiting a 1 s outside call
    between two queries, on a pool of 3: in transaction mode the wait holds
    no server, so all finish in about the length of one call."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 3, "query_wait_timeout": 10})
    r = subprocess.run(["node", NODE_SCRIPT, "slow-handlers", str(s.port), "30"], capture_output=True, text=True,
                       timeout=60)
    out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    assert r.returncode == 0 and out["errors"] == [], (out, r.stderr)
    assert out["seconds"] < 5.0, out  # 30 x 1 s on 3 servers would be 10 s if the wait held them
    assert len(s.backends()) <= 3
