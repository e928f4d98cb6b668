"""The incident: thirteen hours of 503s before anyone noticed: no pool
figures in the logs, /metrics missing because a package was never
installed, a health endpoint that had lost its view of the pool.

What pgsluice must do: metrics and health are built in; under saturation
/health turns 503 with a JSON body naming the pool and why, /metrics shows
the waiting clients and the wait timeouts, a stats line per pool is logged
every `stats_log_period` so the timeline of the degradation can be read
from the log alone, and every error a client gets names its cause. When
the pressure goes away, /health says 200 again.
"""
import datetime
import re
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import free_port, metric, sqlstate_of, wait_until
from incident_helpers import assert_counts_agree, health, http_config, metrics, not_idle_in_transaction

STATS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \d+ INFO stats app/appdb: clients active=(\d+) "
                   r"idle=(\d+) waiting=(\d+); servers active=(\d+) idle=(\d+) used=(\d+) login=(\d+) "
                   r"pool_size=(\d+); max_wait=([0-9.]+)s xact/s=([0-9.]+) worst_hold=([0-9.]+)s; "
                   r"wait_timeouts=(\d+) leak_warnings=(\d+)$", re.M)
SATURATED = re.compile(r"^pgsluice: pool app/appdb saturated: waited (\d+\.\d)s for a server connection "
                       r"\(pool_size=2 active=2 waiting=(\d+)\); see SHOW POOLS$")


def stats_lines(s):
    out = []
    for m in STATS.finditer(s.log()):
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.append({"at": at, "waiting": int(m.group(4)), "sv_active": int(m.group(5)),
                    "pool_size": int(m.group(9)), "max_wait": float(m.group(10)),
                    "wait_timeouts": int(m.group(13))})
    return out


@pytest.mark.timeout(90)
def test_saturation_is_seen_in_health_metrics_errors_and_the_log(sluice):
    s = sluice(http_config(pool_mode="transaction", default_pool_size=2, query_wait_timeout="2s",
                           health_max_wait="500ms", stats_log_period="1s", max_client_conn=100))
    with s.connect() as c:
        c.execute("select 1")
    code, doc = health(s)
    assert code == 200 and doc["status"] == "ok", doc
    # the log shows the healthy pool before anything happens
    assert wait_until(lambda: [x for x in stats_lines(s) if x["waiting"] == 0], timeout=3), s.log_tail()

    # the degradation: the database gets slow (1.5 s queries), 12 workers keep asking
    workers, rounds = 12, 3
    errors, served = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(i):
        with s.connect(application_name=f"api-{i}") as c:
            for _ in range(rounds):
                if stop.is_set():
                    return
                t0 = time.monotonic()
                try:
                    c.execute("select pg_sleep(1.5)")
                    with lock:
                        served.append(time.monotonic() - t0)
                except psycopg.Error as e:
                    with lock:
                        errors.append((time.monotonic() - t0, e))

    t_start = time.time()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    try:
        # /health turns 503 and says which pool and why
        assert wait_until(lambda: health(s)[0] == 503, timeout=5), health(s)
        t_503 = time.time()
        code, doc = health(s)
        bad = [p for p in doc["pools"] if not p["healthy"]]
        assert doc["status"] == "unhealthy" and doc["unhealthy_pools"] == 1 and len(bad) == 1, doc
        assert bad[0]["database"] == "appdb" and bad[0]["user"] == "app" and bad[0]["cl_waiting"] >= 1, bad
        assert re.search(r"a client has waited [0-9.]+s for a server connection \(health_max_wait=0\.5s; "
                         r"active=2 waiting=\d+ pool_size=2\)", bad[0]["reasons"][0]), bad[0]["reasons"]
        # /metrics shows the queue and how long it is
        m = metrics(s)
        assert metric(m, "pgsluice_clients", database="appdb", user="app", state="waiting") >= 1
        assert metric(m, "pgsluice_max_wait_seconds", database="appdb", user="app") > 0.5
        assert metric(m, "pgsluice_servers", database="appdb", user="app", state="active") == 2
        # the wait timeouts show up as they happen
        assert wait_until(lambda: metric(metrics(s), "pgsluice_timeouts_total", database="appdb",
                                         kind="query_wait_timeout") >= 1, timeout=5)
    finally:
        for t in threads:
            t.join(30)
        stop.set()
    t_end = time.time()
    assert not any(t.is_alive() for t in threads)
    # recovery: /health back to 200 without anyone touching the pooler
    assert wait_until(lambda: health(s)[0] == 200, timeout=5), health(s)
    t_200 = time.time()

    # every error named its cause, with the figures
    assert errors, "the load did not saturate the pool"
    for took, e in errors:
        assert sqlstate_of(e) == "53300", e
        assert SATURATED.match(str(e).strip()), str(e)
        assert 1.5 <= took <= 5.0, f"an error came after {took:.2f}s (query_wait_timeout=2s)"
    m = metrics(s)
    assert metric(m, "pgsluice_timeouts_total", database="appdb", kind="query_wait_timeout") == len(errors)
    assert metric(m, "pgsluice_wait_seconds_count", database="appdb", user="app") >= len(served)
    warn = re.findall(r"WARNING C-\d+ appdb/app@127\.0\.0\.1:\d+: query_wait_timeout: waited [0-9.]+s "
                      r"\(pool_size=2 active=2 waiting=\d+\)", s.log())
    assert len(warn) == len(errors), f"{len(warn)} log lines for {len(errors)} timeouts"

    # the timeline, from the log alone
    def after_recovery():
        lines = stats_lines(s)
        return lines if lines and lines[-1]["at"] > t_200 and lines[-1]["waiting"] == 0 else None

    lines = wait_until(after_recovery, timeout=4)
    assert lines, s.log_tail()
    gaps = [b["at"] - a["at"] for a, b in zip(lines, lines[1:])]
    assert gaps and max(gaps) < 2.5 and min(gaps) > 0.5, f"stats lines are not periodic: gaps {gaps}"
    assert all(x["pool_size"] == 2 for x in lines)
    timeouts = [x["wait_timeouts"] for x in lines]
    assert timeouts == sorted(timeouts) and timeouts[0] == 0 and timeouts[-1] == len(errors), timeouts
    degraded = [x for x in lines if x["waiting"] > 0 or x["max_wait"] > 0.5]
    assert degraded, "no stats line showed the degradation"
    first_bad, last_bad = degraded[0]["at"], degraded[-1]["at"]
    # the log brackets what really happened (second resolution, plus one period)
    assert t_start - 1.0 <= first_bad <= t_503 + 1.5, (t_start, first_bad, t_503)
    assert t_end - 4.0 <= last_bad <= t_200 + 1.5, (t_end, last_bad, t_200)
    assert max(x["max_wait"] for x in degraded) >= 1.5
    assert [x for x in lines if x["at"] < first_bad and x["waiting"] == 0], "no healthy line before"
    assert [x for x in lines if x["at"] > last_bad and x["waiting"] == 0], "no healthy line after"
    assert not not_idle_in_transaction(s)
    assert assert_counts_agree(s) <= 2
    print(f"\n{len(served)} served, {len(errors)} got 53300 after "
          f"{min(t for t, _ in errors):.2f}..{max(t for t, _ in errors):.2f}s; /health 503 "
          f"{t_503 - t_start:.2f}s after the load began, 200 again {t_200 - t_end:.2f}s after it ended; "
          f"{len(lines)} stats lines, degraded from +{first_bad - t_start:.1f}s to +{last_bad - t_start:.1f}s, "
          f"worst logged max_wait {max(x['max_wait'] for x in degraded):.2f}s")


@pytest.mark.timeout(60)
def test_unreachable_server_is_named_everywhere_until_it_is_back(sluice, pg):
    """The other way to serve 503s for hours: the pool cannot reach its
    server. The client's error, /health, /metrics and the stats line all
    name it; once the entry points at a live server, all clear."""
    dead = free_port()
    dbs = {"orders": f"host=127.0.0.1 port={dead} dbname=appdb", "appdb": f"host=127.0.0.1 port={pg.port}"}
    s = sluice(http_config(stats_log_period="1s", server_connect_timeout="2s",
                           query_wait_timeout="3s"), databases=dbs)
    t0 = time.monotonic()
    c = pgwire.Conn.open(s.port)
    try:
        try:
            c.startup("app", "orders", timeout=8)
            r = c.query("select 1", timeout=8)
            err = r.error
        except pgwire.PgError as e:
            err = e.fields
    finally:
        c.close()
    took = time.monotonic() - t0
    assert err and err["C"] in ("08006", "08001"), err
    assert str(dead) in err["M"] and "refused" in err["M"].lower(), err
    assert took < 3.0, f"the error took {took:.2f}s"
    code, doc = health(s)
    assert code == 503, doc
    pool = [p for p in doc["pools"] if p["database"] == "orders"][0]
    assert not pool["healthy"] and "server unreachable" in pool["reasons"][0], pool
    assert "refused" in pool["reasons"][0].lower()
    m = metrics(s)
    assert metric(m, "pgsluice_server_unreachable", database="orders") == 1
    assert metric(m, "pgsluice_server_connect_failures_total", database="orders") >= 1
    s.wait_log(r"INFO stats app/orders: .*; server unreachable: .*refused", timeout=3)
    # the server is back (the entry is fixed and reloaded): all clear
    s.rewrite(databases={"orders": f"host=127.0.0.1 port={pg.port} dbname=appdb",
                         "appdb": f"host=127.0.0.1 port={pg.port}"})
    s.reload()

    def orders_works():
        try:
            with s.connect(db="orders") as c2:
                return c2.execute("select 'orders back'").fetchone() == ("orders back",)
        except psycopg.Error:
            return False

    assert wait_until(orders_works, timeout=8)
    assert wait_until(lambda: health(s)[0] == 200, timeout=5), health(s)
    assert metric(metrics(s), "pgsluice_server_unreachable", database="orders") == 0
    print(f"\nunreachable server: client error {err['C']} after {took:.2f}s: {err['M']}")
