"""SIGHUP reloads the configuration: new databases appear, pools resize,
the auth file is re-read, nobody is dropped, and a bad file is refused
with a log line while the old configuration keeps working."""
import threading
import time

import psycopg
import pytest

import pgwire
from helpers import sqlstate_of, wait_until


class Chatter:
    """A client that runs a query every 20 ms in a thread and records errors."""

    def __init__(self, s, **kw):
        self.conn = s.connect(**kw)
        self.errors = []
        self.count = 0
        self.pids = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                self.pids.add(self.conn.execute("select pg_backend_pid()").fetchone()[0])
                self.count += 1
            except Exception as e:  # noqa: BLE001 - asserted by the test
                self.errors.append(e)
                return
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        closed = self.conn.closed
        self.conn.close()
        return closed


def can_connect(s, db):
    try:
        with s.connect(db=db) as c:
            return c.execute("select current_database()").fetchone()[0]
    except psycopg.OperationalError:
        return None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_new_database_by_reload_keeps_existing_clients(sluice, pg, mode):
    dbs = {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    s = sluice({"pool_mode": mode}, databases=dbs)
    assert can_connect(s, "newdb") is None
    chat = Chatter(s)
    time.sleep(0.3)
    s.rewrite(databases=dict(dbs, newdb=f"host=127.0.0.1 port={pg.port} dbname=appdb"))
    s.reload()
    assert wait_until(lambda: can_connect(s, "newdb"), timeout=5) == "appdb", \
        "newdb not reachable after reload"
    time.sleep(0.3)
    n = chat.count
    closed = chat.finish()
    assert chat.errors == [], f"existing client failed during reload: {chat.errors[0]!r}"
    assert not closed and n > 10
    if mode == "session":
        assert len(chat.pids) == 1, "session-mode client was moved to another server by the reload"
    assert s.alive()


@pytest.mark.timeout(60)
def test_pool_size_grows_by_reload(sluice):
    s = sluice({"default_pool_size": 2, "query_wait_timeout": 2})

    def hold(n):
        """n clients each open a transaction; returns (conns, pids, errors)."""
        conns, pids, errors = [], set(), []
        for _ in range(n):
            c = s.connect()
            conns.append(c)
            try:
                c.execute("begin")
                pids.add(c.execute("select pg_backend_pid()").fetchone()[0])
            except psycopg.Error as e:
                errors.append(e)
        return conns, pids, errors

    def release(conns):
        for c in conns:
            c.close()

    conns, pids, errors = hold(3)
    release(conns)
    assert len(pids) == 2 and len(errors) == 1, f"pool_size=2 let {len(pids)} in, errors {errors}"
    assert sqlstate_of(errors[0]) == "53300"

    s.rewrite({"default_pool_size": 4})
    s.reload()
    deadline = time.monotonic() + 10
    while True:
        conns, pids, errors = hold(4)
        release(conns)
        if len(pids) == 4 and not errors or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(pids) == 4 and not errors, f"after reload to 4: {len(pids)} servers, errors {errors}"


@pytest.mark.timeout(30)
def test_bad_value_on_reload_is_refused_and_old_config_kept(sluice, pg):
    s = sluice({"default_pool_size": 3}, databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    chat = Chatter(s)
    offset = s.log_offset()
    s.rewrite({"default_pool_size": "lots"})
    s.reload()
    m = s.wait_log(r"default_pool_size|pgsluice\.ini:\d+", timeout=5, since=offset)
    assert s.alive(), "pgsluice exited on a bad reload:\n" + s.log_tail()
    with s.connect() as c:
        assert c.execute("select 'old config'").fetchone() == ("old config",)
    # a later good reload still applies
    dbs = dict(s.databases, newdb=f"host=127.0.0.1 port={pg.port} dbname=appdb")
    s.rewrite({"default_pool_size": 3}, databases=dbs)
    s.reload()
    assert wait_until(lambda: can_connect(s, "newdb"), timeout=5) == "appdb"
    chat.finish()
    assert chat.errors == [], f"client failed across the bad reload: {chat.errors[0]!r}"
    assert m


@pytest.mark.timeout(30)
def test_auth_file_is_reread_on_reload(sluice):
    s = sluice({"auth_type": "md5"}, userlist={"app": "apppass"})
    with s.connect(password="apppass") as c:
        assert c.execute("select 1").fetchone() == (1,)
    s.rewrite(userlist={"app": "newpass"})
    s.reload()

    def new_password_works():
        try:
            with s.connect(password="newpass") as c:
                return c.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    assert wait_until(new_password_works, timeout=5), "new password from the reloaded auth_file refused"
    fields = pgwire.login_error(s.port, user="app", password="apppass")
    assert fields["C"] == "28P01", fields


@pytest.mark.timeout(30)
def test_reload_moves_fallback_pool_to_new_entry(sluice, pg):
    """A client reached `newdb` through the `*` entry (no such database on
    the server); an explicit newdb entry added by reload must take over
    from the pool the fallback had created."""
    s = sluice()
    with pytest.raises(psycopg.Error) as e:
        with s.connect(db="newdb") as c:
            c.execute("select 1")
    assert 'database "newdb" does not exist' in str(e.value)
    s.rewrite(databases=dict(s.databases, newdb=f"host=127.0.0.1 port={pg.port} dbname=appdb"))
    s.reload()
    assert wait_until(lambda: can_connect(s, "newdb"), timeout=5) == "appdb", \
        "after reload, newdb still goes to the fallback entry's pool"


# wait_log matches case-insensitively; (?-i:...) keeps these log checks exact.

@pytest.mark.timeout(30)
def test_reload_adds_database_and_keeps_clients(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    c = s.connect()
    assert c.execute("select 1").fetchone() == (1,)
    with pytest.raises(Exception):
        s.connect(db="newdb")
    s.rewrite(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
                         "newdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"})
    s.reload()
    s.wait_log(r"(?-i:reload done)")
    with s.connect(db="newdb") as n:
        assert n.execute("select current_database()").fetchone() == ("appdb",)
    assert c.execute("select 2").fetchone() == (2,)
    c.close()


@pytest.mark.timeout(30)
def test_reload_grows_pool(sluice, pg):
    s = sluice({"default_pool_size": 2, "query_wait_timeout": 1})
    conns = [s.connect(autocommit=False) for _ in range(4)]
    conns[0].execute("select 1")
    conns[1].execute("select 1")
    with pytest.raises(Exception):
        conns[2].execute("select 1")
    conns[2].rollback()
    s.rewrite({"default_pool_size": 4})
    s.reload()
    s.wait_log(r"(?-i:reload done)")
    conns[2].execute("select 1")
    conns[3].execute("select 1")
    assert len(pg.backends(user="app", db="appdb")) == 4
    for c in conns:
        c.close()


@pytest.mark.timeout(30)
def test_bad_reload_keeps_old_config(sluice):
    s = sluice()
    c = s.connect()
    s.rewrite({"default_pool_size": "lots"})
    s.reload()
    s.wait_log(r"(?-i:reload failed)")
    assert c.execute("select 1").fetchone() == (1,)
    with s.connect() as d:
        assert d.execute("select 2").fetchone() == (2,)
    c.close()


@pytest.mark.timeout(40)
def test_server_login_secret_is_reread_on_reload(sluice):
    """The password pgsluice logs in to PostgreSQL with comes from the
    auth_file: after a RELOAD, new server logins use the new one (the pool's
    settings are rebuilt from the new generation, not the one it replaces)."""
    s = sluice({"server_login_retry": "1"}, userlist={"scramuser": "wrongpass"})
    fields = pgwire.login_error(s.port, user="scramuser", database="appdb")
    assert fields["C"] == "28P01", fields
    s.rewrite(userlist={"scramuser": "scrampass"})
    s.reload()

    def new_secret_works():
        try:
            with s.connect(user="scramuser") as c:
                return c.execute("select current_user").fetchone() == ("scramuser",)
        except psycopg.OperationalError:
            return False

    assert wait_until(new_secret_works, timeout=15), "server logins kept the auth_file secret of before the reload"
