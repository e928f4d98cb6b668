"""The incident: the application pool's idle timeout and the pooler's
server_idle_timeout were both 120 s; the server side was reaped at the
moment a connection was handed out and "the connection is closed" errors
cascaded.

pgsluice watches idle server sockets (a server PostgreSQL closes while idle
is dropped at once and replaced), checks servers idle past
server_check_delay before use, spreads lifetimes and idle expiry
(server_lifetime_jitter), and `--check --online` names the coupling."""
import random
import re
import subprocess
import time

import psycopg
import pytest

from helpers import SLUICE_BIN, wait_until


@pytest.fixture
def short_idle_sessions(pg):
    """PostgreSQL itself closes sessions of appdb after 1 s idle."""
    pg.sql("alter database appdb set idle_session_timeout = '1s'")
    yield
    pg.sql("alter database appdb reset idle_session_timeout")


@pytest.mark.timeout(90)
def test_servers_postgresql_closes_while_idle_never_reach_a_client(sluice, pg, short_idle_sessions):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 3, "server_idle_timeout": "1s",
                "server_check_delay": "500ms"})
    rng = random.Random(7)
    errors = []
    pids = set()
    for _ in range(10):
        try:
            with s.connect() as c:
                pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
        except psycopg.Error as e:
            errors.append(str(e))
        time.sleep(rng.uniform(0.7, 1.3))  # around both idle timeouts
    assert errors == [], errors
    assert len(pids) > 1, "PostgreSQL never closed an idle server: the reproduction did not happen"
    pg_closed = len(re.findall(r"idle-session timeout", pg.log()))
    assert pg_closed >= 1, "no server was closed by idle_session_timeout"
    s.wait_log(r"closing: (server closed or sent data while idle|server_check_query|idle timeout)")
    assert wait_until(lambda: len(s.backends()) <= 3, timeout=3)


@pytest.mark.timeout(60)
def test_lifetimes_are_spread(sluice, pg):
    """8 servers opened together with server_lifetime=4s and 50% jitter expire
    between 2 s and 6 s: far from all at once (a range under 1 s has odds of
    about 1 in 2,000)."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 8, "server_lifetime": "4s",
                "server_lifetime_jitter": "50%", "min_pool_size": 0, "verbose": 1})
    import threading
    barrier = threading.Barrier(8)

    def hold():
        with s.connect() as c:
            barrier.wait(10)
            c.execute("select pg_sleep(0.3)")

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert wait_until(lambda: len(re.findall(r"closing idle server: idle timeout, lifetime", s.log())) >= 8, timeout=12)
    stamps = [m.group(1) for m in re.finditer(r"^\S+ (\S+) \d+ INFO S-\d+ \S+: closing idle server: idle timeout, lifetime",
                                                s.log(), re.M)]
    secs = sorted(float(t.split(":")[2]) + 60 * int(t.split(":")[1]) for t in stamps)
    assert secs[-1] - secs[0] >= 1.0, f"8 servers opened together all expired together: {stamps}"


@pytest.mark.timeout(60)
def test_check_online_names_the_coupling(sluice, pg, short_idle_sessions):
    s = sluice({"server_idle_timeout": "120s"}, start=False)
    s.write()
    r = subprocess.run([SLUICE_BIN, "--check", "--online", s.ini], capture_output=True, text=True, timeout=30)
    coupled = [ln for ln in r.stdout.splitlines() if ln.startswith("WARNING") and "idle_session_timeout=1s" in ln]
    assert coupled, r.stdout
    assert "server_idle_timeout=120s" in coupled[0]
