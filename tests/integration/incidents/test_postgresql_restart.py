"""PostgreSQL restarts (pg_ctl restart -m fast) under load: the pooler stays
up, clients caught in flight get a clean error quickly (PostgreSQL's own
57P01, or pgsluice's 08006 naming the unreachable server while it is down),
and everyone is served again within seconds of PostgreSQL being back, with
no phantom server connections left in the pooler's count."""
import threading
import time

import psycopg
import pytest

from helpers import wait_until


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_restart_under_load(sluice, pg, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 4, "query_wait_timeout": 5, "server_login_retry": "2s"})
    stop = threading.Event()
    lock = threading.Lock()
    log = []  # (monotonic, ok, latency, error text)

    def worker(i):
        conn = None
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = s.connect(connect_timeout=5, application_name=f"w{i}")
                conn.execute("select pg_sleep(0.02)")
                ok, err = True, ""
            except psycopg.Error as e:
                ok, err = False, f"{e.sqlstate} {e}"
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            with lock:
                log.append((t0, ok, time.monotonic() - t0, err))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        restart_at = time.monotonic()
        pg.restart()
        back_at = time.monotonic()
        time.sleep(4.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert s.proc.poll() is None, "the pooler died"
    errors = [e for e in log if not e[1]]
    assert errors, "the restart went unnoticed: the reproduction did not happen"
    # clean and quick: no hang on a dead server
    assert max(e[2] for e in log) < 6.0, max(e[2] for e in log)
    for _, _, _, err in errors:
        assert err.split()[0] in ("57P01", "08006", "None", "57P03"), err
    # served again soon after PostgreSQL is back: every worker succeeds
    recovered = [e for e in log if e[1] and e[0] > back_at]
    assert recovered, f"nobody was served after the restart: {sorted(set(e[3][:120] for e in errors))[:6]}"
    first_ok = min(e[0] for e in recovered)
    assert first_ok - back_at < 3.0, f"served again only {first_ok - back_at:.1f}s after PostgreSQL was back"
    late_errors = [e for e in errors if e[0] > first_ok + 2.0]
    assert not late_errors, late_errors[:3]
    # no phantom: what the pooler counts is what PostgreSQL sees
    with s.connect(user="postgres", db="pgsluice") as c:
        cur = c.execute("SHOW POOLS")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall() if r[0] == "appdb"]
    assert wait_until(lambda: len(s.backends()) <= 4, timeout=3)
    counted = sum(r["sv_active"] + r["sv_idle"] + r["sv_used"] + r["sv_login"] + r["sv_tested"] for r in rows)
    assert counted == len(s.backends()), (rows, s.backends())
    print(f"restart ({mode}): {len(errors)} errors, worst latency {max(e[2] for e in log):.2f}s, "
          f"served again {first_ok - back_at:.2f}s after PostgreSQL was back "
          f"(restart took {back_at - restart_at:.2f}s)")
