"""HTTP: /metrics in Prometheus text format (checked by promtool), /health
turning 503 while clients wait too long or the server cannot be reached,
/pools as JSON, and PgBouncer's Prometheus exporter reading the admin
console unchanged."""
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from helpers import SLUICE_BIN, free_port, http_get, metric, prometheus_samples, wait_until


def http_sluice(sluice, **over):
    port = free_port()
    cfg = {"http_port": port, "http_addr": "127.0.0.1"}
    cfg.update(over)
    return sluice(cfg), port


samples = prometheus_samples


def value(s, name, **labels):
    return metric(s, name, required=True, **labels)


@pytest.mark.timeout(90)
def test_metrics_exposition_is_valid_and_counts_traffic(sluice):
    s, port = http_sluice(sluice, default_pool_size=2, query_wait_timeout=1)
    with s.connect() as c:
        for i in range(20):
            c.execute("select %s::int", (i,))
        c.execute("begin")
        c.execute("select 1")
        # a second client waits past query_wait_timeout behind the held server... on a pool of 2
        held = s.connect()
        held.execute("begin")
        with s.connect() as third:
            with pytest.raises(psycopg.errors.TooManyConnections):
                third.execute("select 1")
        held.close()
        c.execute("rollback")
    time.sleep(0.3)  # byte counts are gathered by the workers' tick
    code, text = http_get(port, "/metrics")
    assert code == 200
    s_ = samples(text)
    lbl = {"database": "appdb", "user": "app"}
    assert value(s_, "pgsluice_up") == 1
    assert value(s_, "pgsluice_queries_total", **lbl) >= 22
    assert value(s_, "pgsluice_transactions_total", **lbl) >= 20
    assert value(s_, "pgsluice_timeouts_total", kind="query_wait_timeout", **lbl) == 1
    assert value(s_, "pgsluice_pool_size", **lbl) == 2
    assert value(s_, "pgsluice_received_bytes_total", **lbl) > 0
    assert value(s_, "pgsluice_wait_seconds_count", **lbl) >= 21
    assert value(s_, "pgsluice_wait_seconds_bucket", le="+Inf", **lbl) == value(s_, "pgsluice_wait_seconds_count", **lbl)
    assert value(s_, "pgsluice_hold_seconds_count", **lbl) >= 20
    assert value(s_, "pgsluice_release_rollbacks_total", **lbl) >= 1  # the held transaction left open
    for fam in ("pgsluice_clients", "pgsluice_servers", "pgsluice_refused_clients_total",
                "pgsluice_leak_warnings_total", "pgsluice_dead_servers_total",
                "pgsluice_server_connect_failures_total"):
        assert f"# TYPE {fam} " in text, fam
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed: make deps installs it"
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"promtool rejected /metrics:\n{r.stdout}{r.stderr}"


@pytest.mark.timeout(90)
def test_health_turns_503_under_saturation_and_back(sluice):
    s, port = http_sluice(sluice, default_pool_size=2, health_max_wait="500ms", query_wait_timeout=20)
    assert http_get(port, "/health")[0] == 200
    errors = []

    def sleeper():
        try:
            with s.connect() as c:
                c.execute("select pg_sleep(2)")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=sleeper) for _ in range(10)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: http_get(port, "/health")[0] == 503, timeout=5), http_get(port, "/health")
        code, body = http_get(port, "/health")
        doc = json.loads(body)
        bad = [p for p in doc["pools"] if not p["healthy"]]
        assert doc["status"] == "unhealthy" and bad, doc
        assert bad[0]["database"] == "appdb" and bad[0]["user"] == "app"
        assert "waited" in bad[0]["reasons"][0] and "health_max_wait" in bad[0]["reasons"][0]
        assert bad[0]["cl_waiting"] >= 1 and bad[0]["sv_active"] == 2
        pools = json.loads(http_get(port, "/pools")[1])
        assert [p for p in pools if p["database"] == "appdb"][0]["cl_waiting"] >= 1
    finally:
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert wait_until(lambda: http_get(port, "/health")[0] == 200, timeout=5), http_get(port, "/health")


@pytest.mark.timeout(60)
def test_health_names_an_unreachable_server(sluice):
    dead = free_port()
    port = free_port()
    s = sluice({"http_port": port, "query_wait_timeout": 2},
               databases={"gone": f"host=127.0.0.1 port={dead} dbname=gone"})
    with pytest.raises(psycopg.OperationalError):
        s.connect(db="gone")
    code, body = http_get(port, "/health")
    assert code == 503, body
    pool = json.loads(body)["pools"][0]
    assert pool["database"] == "gone" and not pool["healthy"]
    assert "server unreachable" in pool["reasons"][0] and "refused" in pool["reasons"][0].lower()
    s_ = samples(http_get(port, "/metrics")[1])
    assert value(s_, "pgsluice_server_unreachable", database="gone") == 1
    assert value(s_, "pgsluice_server_connect_failures_total", database="gone") >= 1


@pytest.mark.timeout(30)
def test_unknown_paths_and_methods(sluice):
    s, port = http_sluice(sluice)
    assert http_get(port, "/nope")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


@pytest.mark.timeout(60)
def test_http_port_taken_is_a_clear_startup_error(sluice):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        s = sluice({"http_port": taken.getsockname()[1], "listen_port": free_port()}, start=False)
        s.expected_exit = True
        s.write()
        r = subprocess.run([SLUICE_BIN, s.ini], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "http_port" in r.stderr, r.stderr


@pytest.mark.timeout(60)
def test_pgbouncer_exporter_scrapes_the_admin_console(sluice):
    exporter = shutil.which("prometheus-pgbouncer-exporter")
    assert exporter, "prometheus-pgbouncer-exporter (Debian package) is needed: make deps installs it"
    s = sluice({"stats_users": "stats_reader", "auth_type": "md5"},
               userlist={"app": "apppass", "stats_reader": "readpass"})
    with s.connect(password="apppass") as c:
        for _ in range(5):
            c.execute("select 1")
    port = free_port()
    env = dict(os.environ, PGPASSWORD="readpass", PGSSLMODE="disable")
    proc = subprocess.Popen([exporter, "--host", "127.0.0.1", "--port", str(port), "--pgbouncer-host", "127.0.0.1",
                             "--pgbouncer-port", str(s.port), "--pgbouncer-user", "stats_reader"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def scraped():
            try:
                return http_get(port, "/metrics", timeout=2)
            except OSError:
                return None
        got = wait_until(lambda: proc.poll() is not None or scraped(), timeout=10)
        assert proc.poll() is None, f"exporter exited:\n{proc.stdout.read()}"
        assert got
        code, text = scraped()
        assert code == 200
        assert re.search(r'^pgbouncer_requests_total\{database="appdb"\} ([0-9.]+)$', text, re.M), text[:3000]
        assert re.search(r'^pgbouncer_active_clients\{database="appdb",user="app"\}', text, re.M)
        assert re.search(r'^pgbouncer_pools ', text, re.M)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Traceback" not in out, out
