"""The admin console: PgBouncer's columns first (so exporters and dashboards
work unchanged), who holds which server, SHOW STATS figures, and who may do
what (admin_users change things, stats_users only look)."""
import time

import psycopg
import pytest

from helpers import wait_until
from pgbouncer_columns import COLUMNS, TYPES

SHOWS = ["POOLS", "CLIENTS", "SERVERS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "DATABASES", "USERS",
         "CONFIG", "LISTS", "VERSION"]


def admin(s, user="postgres"):
    return s.connect(user=user, db="pgsluice")


def show(c, what):
    cur = c.execute(f"SHOW {what}")
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()], cur.description


@pytest.mark.timeout(60)
def test_every_show_starts_with_pgbouncers_columns_and_types(sluice):
    s = sluice({"stats_users": "stats"}, users={"app": "pool_mode=transaction"})
    with s.connect() as app:
        app.execute("select 1")
        with admin(s) as c:
            for what in SHOWS:
                _, desc = show(c, what)
                names = [d.name for d in desc]
                want = COLUMNS[what]
                assert names[:len(want)] == want, f"SHOW {what}: {names}"
                types = [d.type_code for d in desc][:len(want)]
                assert types == TYPES[what], f"SHOW {what} types: {types}"


@pytest.mark.timeout(60)
def test_clients_and_servers_say_who_holds_what(sluice, pg):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2})
    holder = s.connect(application_name="billing-worker")
    holder.execute("begin")
    holder.execute("select 'held by billing' as marker")
    idle = s.connect(application_name="idle-one")
    idle.execute("select 1")
    try:
        with admin(s) as c:
            clients, _ = show(c, "CLIENTS")
            servers, _ = show(c, "SERVERS")
        mine = [r for r in clients if r["application_name"] == "billing-worker"]
        assert len(mine) == 1, clients
        cl = mine[0]
        assert cl["type"] == "C" and cl["user"] == "app" and cl["database"] == "appdb"
        assert cl["state"] == "active" and cl["state_detail"] == "active"
        assert cl["xact_state"] == "in transaction"
        assert "held by billing" in cl["last_statement"]
        assert float(cl["held_for"]) >= 0
        assert cl["addr"] == "127.0.0.1" and cl["port"] > 0 and cl["local_port"] == s.port
        linked = [r for r in servers if r["ptr"] == cl["link"]]
        assert len(linked) == 1, (cl, servers)
        sv = linked[0]
        assert sv["link"] == cl["ptr"] and sv["state"] == "active" and sv["xact_state"] == "in transaction"
        backend = [b for b in pg.backends() if b.pid == sv["remote_pid"]]
        assert backend and backend[0].state == "idle in transaction", (sv, pg.backends())
        other = [r for r in clients if r["application_name"] == "idle-one"]
        assert other and other[0]["link"] == "" and other[0]["state_detail"] == "idle"
        assert "select 1" in other[0]["last_statement"]
        # the admin session itself is not listed
        assert all(r["database"] not in ("pgsluice", "pgbouncer") for r in clients)
    finally:
        holder.close()
        idle.close()


@pytest.mark.timeout(60)
def test_pools_and_stats_count_what_happened(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 3, "stats_period": "1s"})
    with s.connect() as a:
        for i in range(25):
            a.execute("select %s::int", (i,))
        with a.transaction():
            a.execute("select 1")
            a.execute("select 2")
        with admin(s) as c:
            pools, _ = show(c, "POOLS")
            p = [r for r in pools if r["database"] == "appdb" and r["user"] == "app"]
            assert len(p) == 1, pools
            assert p[0]["pool_mode"] == "transaction" and p[0]["pool_size"] == 3
            assert p[0]["cl_active"] == 1 and p[0]["cl_waiting"] == 0
            assert p[0]["sv_idle"] + p[0]["sv_active"] + p[0]["sv_used"] >= 1
            # byte counts are gathered by the workers' 100 ms tick
            def appdb_stats():
                return [r for r in show(c, "STATS")[0] if r["database"] == "appdb"]
            assert wait_until(lambda: appdb_stats()[0]["total_sent"] > 0, timeout=2)
            st = appdb_stats()
            assert len(st) == 1, st
            st = st[0]
            # 25 single statements + BEGIN, 2 selects, COMMIT
            assert st["total_query_count"] >= 29 and st["total_xact_count"] >= 26, st
            assert st["total_requests"] == st["total_query_count"]
            assert st["total_received"] > 25 * 10 and st["total_sent"] > 25 * 10
            assert st["total_query_time"] > 0 and st["total_xact_time"] > 0
            totals, _ = show(c, "STATS_TOTALS")
            assert [r for r in totals if r["database"] == "appdb"][0]["query_count"] == st["total_query_count"]
            lists = {r["list"]: r["items"] for r in show(c, "LISTS")[0]}
            assert lists["pools"] >= 1 and lists["databases"] == 3 and lists["used_clients"] >= 2
            dbs = {r["name"]: r for r in show(c, "DATABASES")[0]}
            assert dbs["appdb"]["pool_size"] == 3 and dbs["appdb"]["database"] == "appdb"
            assert dbs["appdb"]["host"] == "127.0.0.1" and dbs["appdb"]["port"] == s.pg.port
            cfg = {r["key"]: r for r in show(c, "CONFIG")[0]}
            assert cfg["default_pool_size"]["value"] == "3"
            assert cfg["pool_mode"]["changeable"] in ("yes", "no")


@pytest.mark.timeout(60)
def test_averages_follow_the_stats_period(sluice):
    s = sluice({"stats_period": "1s"})
    with s.connect() as a, admin(s) as c:
        t_end = time.monotonic() + 2.5
        n = 0
        while time.monotonic() < t_end:
            a.execute("select 1")
            n += 1
        row = [r for r in show(c, "STATS_AVERAGES")[0] if r["database"] == "appdb"][0]
        assert row["query_count"] > 0 and row["xact_count"] > 0, row
        assert row["query_count"] <= n, (row, n)


@pytest.mark.timeout(60)
def test_stats_users_look_admin_users_change_others_are_refused(sluice):
    s = sluice({"admin_users": "postgres", "stats_users": "md5user", "auth_type": "md5"},
               userlist={"postgres": "adminpass", "md5user": "md5pass", "scramuser": "scrampass"})
    with s.connect(user="md5user", db="pgsluice", password="md5pass") as c:
        assert show(c, "POOLS")[0] is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("RELOAD")
        assert "admin_users" in str(e.value)
        assert c.execute("SHOW VERSION").fetchone()[0].startswith("pgsluice")
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(user="scramuser", db="pgsluice", password="scrampass")
    assert "not allowed" in str(e.value)
    with s.connect(user="postgres", db="pgsluice", password="adminpass") as c:
        c.execute("RELOAD")
    s.wait_log(r"reloading")


@pytest.mark.timeout(60)
def test_console_accepts_psql_and_reports_unknown_commands(sluice):
    s = sluice()
    r = s.psql(["-At", "-c", "show pools;"], user="postgres", db="pgbouncer")
    assert r.returncode == 0, r.stderr
    r = s.psql(["-c", "SHOW NONSENSE"], user="postgres", db="pgbouncer")
    assert r.returncode != 0 and "unsupported admin console command" in r.stderr
    with admin(s) as c:
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("FROB")
        assert c.execute("SHOW LISTS").fetchall()


@pytest.mark.timeout(60)
def test_pause_waits_for_servers_in_use_then_resume_serves_the_queue(sluice):
    import threading
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2, "query_wait_timeout": 30})
    holder = s.connect()
    holder.execute("begin")
    holder.execute("select 1")
    waiter = s.connect()
    waiter.execute("select 1")  # logged in and known to the pool
    done = {}
    with admin(s) as c:
        t0 = time.monotonic()
        pauser = threading.Thread(target=lambda: done.setdefault("pause", c.execute("PAUSE appdb").statusmessage))
        pauser.start()
        time.sleep(0.6)
        assert "pause" not in done, "PAUSE answered while a server was still in use"
        holder.execute("commit")
        pauser.join(5)
        assert done.get("pause") == "PAUSE" and time.monotonic() - t0 >= 0.6
        # paused: a query waits in the queue instead of running
        got = {}
        q = threading.Thread(target=lambda: got.setdefault("row", waiter.execute("select 'after resume'").fetchone()))
        q.start()
        time.sleep(0.6)
        assert "row" not in got, "a query ran while the database was paused"
        pools = [r for r in show(c, "POOLS")[0] if r["database"] == "appdb"]
        assert pools[0]["cl_waiting"] == 1, pools
        assert c.execute("RESUME appdb").statusmessage == "RESUME"
        q.join(5)
        assert got.get("row") == ("after resume",)
    holder.close()
    waiter.close()


@pytest.mark.timeout(60)
def test_reconnect_replaces_server_connections(sluice, pg):
    s = sluice({"pool_mode": "session", "default_pool_size": 2})
    with s.connect() as a:
        old = a.execute("select pg_backend_pid()").fetchone()[0]
    with admin(s) as c:
        assert c.execute("RECONNECT appdb").statusmessage == "RECONNECT"
    assert wait_until(lambda: old not in [b.pid for b in pg.backends()], timeout=3), "old server not closed"
    with s.connect() as a:
        assert a.execute("select pg_backend_pid()").fetchone()[0] != old


@pytest.mark.timeout(60)
def test_kill_drops_clients_and_keeps_the_database_paused_until_resume(sluice, pg):
    import threading
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2, "query_wait_timeout": 30})
    victim = s.connect()
    victim.execute("begin")
    victim.execute("select 1")
    with admin(s) as c:
        assert c.execute("KILL appdb").statusmessage == "KILL"
        with pytest.raises(psycopg.OperationalError) as e:
            victim.execute("select 2")
        assert "killed by an administrator" in str(e.value) or victim.closed
        assert wait_until(lambda: not [b for b in pg.backends() if b.datname == "appdb"
                                       and b.state == "idle in transaction"], timeout=3)
        late = s.connect()
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("row", late.execute("select 'served'").fetchone()))
        t.start()
        time.sleep(0.5)
        assert "row" not in got, "a killed database served a query before RESUME"
        c.execute("RESUME appdb")
        t.join(5)
        assert got.get("row") == ("served",)
        late.close()
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("KILL")
        with pytest.raises(psycopg.Error) as e:
            c.execute("PAUSE nosuchdb")
        assert e.value.sqlstate == "3D000"
    victim.close()


@pytest.mark.timeout(60)
def test_set_changes_a_running_setting(sluice):
    s = sluice({"default_pool_size": 3})
    with s.connect() as a, admin(s) as c:
        a.execute("select 1")
        assert c.execute("SET default_pool_size = 7").statusmessage == "SET default_pool_size=7"
        cfg = {r["key"]: r["value"] for r in show(c, "CONFIG")[0]}
        assert cfg["default_pool_size"] == "7"
        assert wait_until(lambda: [r for r in show(c, "POOLS")[0] if r["database"] == "appdb"][0]["pool_size"] == 7,
                          timeout=2)
        c.execute("set query_wait_timeout='2s'")
        assert {r["key"]: r["value"] for r in show(c, "CONFIG")[0]}["query_wait_timeout"] in ("2s", "2")
        with pytest.raises(psycopg.Error) as e:
            c.execute("SET no_such_key = 1")
        assert e.value.sqlstate == "42704"
        with pytest.raises(psycopg.Error) as e:
            c.execute("SET listen_port = 1")
        assert e.value.sqlstate == "55P02" and "restart" in str(e.value)
        with pytest.raises(psycopg.Error) as e:
            c.execute("SET default_pool_size = lots")
        assert e.value.sqlstate == "22023"
        assert a.execute("select 2").fetchone() == (2,)
