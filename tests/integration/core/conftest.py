"""Fixtures: a throwaway PostgreSQL 15 and pgsluice processes in front of it.

Everything listens on 127.0.0.1 or unix sockets in a temp dir, on ports the
kernel hands out; every process started here is stopped at teardown, and
the pooler's log is checked for sanitizer reports.
"""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg
import pytest

from coreutil import ROOT, PGBIN, SLUICE_BIN, USERS, free_port, as_postgres, md5_secret, wait_until  # noqa: F401


class Postgres:
    def __init__(self, base):
        self.dir = base
        self.data = os.path.join(base, "data")
        self.host = "127.0.0.1"
        self.socket_dir = base
        self.port = None

    def start(self):
        os.makedirs(self.data)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(as_postgres([f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all trustuser 127.0.0.1/32 trust\n"
                    "host all md5user 127.0.0.1/32 md5\n"
                    "host all scramuser 127.0.0.1/32 scram-sha-256\n"
                    "host all passuser 127.0.0.1/32 password\n"
                    "host all app 127.0.0.1/32 scram-sha-256\n"
                    "host all all 127.0.0.1/32 trust\n")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("max_connections = 200\nfsync = off\nsynchronous_commit = off\n"
                    "full_page_writes = off\nshared_buffers = 64MB\n")
        for attempt in range(5):
            self.port = free_port()
            r = subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-w", "-t", "30", "-l",
                                            os.path.join(self.dir, "postgresql.log"), "-o",
                                            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1",
                                            "start"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            if r.returncode == 0:
                break
        else:
            raise RuntimeError("PostgreSQL did not start: " + self.log()[-2000:])
        for user, (pw, enc) in USERS.items():
            self.sql(f"SET password_encryption = '{enc}'; CREATE ROLE {user} LOGIN PASSWORD '{pw}'")
        self.sql("CREATE DATABASE appdb OWNER app")

    def log(self):
        try:
            with open(os.path.join(self.dir, "postgresql.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def restart(self):
        subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "restart", "-l",
                                    os.path.join(self.dir, "postgresql.log"), "-o",
                                    f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def dsn(self, user="postgres", db="postgres"):
        return f"host={self.host} port={self.port} user={user} dbname={db} connect_timeout=5"

    def connect(self, user="postgres", db="postgres", **kw):
        kw.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(user, db), **kw)

    def sql(self, query, params=None, db="postgres"):
        with psycopg.connect(f"host={self.socket_dir} port={self.port} user=postgres dbname={db}",
                             autocommit=True) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else None

    def backends(self, user=None, db=None):
        q = ("SELECT pid, usename, datname, state, query, application_name FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        rows = self.sql(q)
        return [r for r in rows if (user is None or r[1] == user) and (db is None or r[2] == db)]

    def terminate(self, pid):
        self.sql("SELECT pg_terminate_backend(%s)", [pid])

    def scram_secret(self, user):
        return self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [user])[0][0]


@pytest.fixture(scope="session")
def pg():
    base = tempfile.mkdtemp(prefix="pgsluice-pg-")
    os.chmod(base, 0o777)
    p = Postgres(base)
    try:
        p.start()
        yield p
    finally:
        p.stop()
        shutil.rmtree(base, ignore_errors=True)


SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "ThreadSanitizer", "LeakSanitizer")


class Sluice:
    def __init__(self, pg, base, config=None, databases=None, users=None, userlist=None):
        self.pg = pg
        self.dir = base
        self.ini = os.path.join(base, "pgsluice.ini")
        self.logfile = os.path.join(base, "pgsluice.log")
        self.proc = None
        self.port = free_port()
        self.config = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": base,
            "auth_type": "trust",
            "auth_file": os.path.join(base, "userlist.txt"),
            "admin_users": "postgres",
            "pool_mode": "transaction",
            "default_pool_size": "10",
            "max_client_conn": "300",
            "workers": "2",
            "http_port": "0",
        }
        self.config.update({k: str(v) for k, v in (config or {}).items()})
        self.databases = databases if databases is not None else {
            "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb",
            "postgres": f"host=127.0.0.1 port={pg.port}",
            "*": f"host=127.0.0.1 port={pg.port}",
        }
        self.users = users or {}
        self.userlist = userlist if userlist is not None else {u: p for u, (p, _) in USERS.items()}

    def write(self):
        with open(self.ini, "w") as f:
            f.write("[pgsluice]\n")
            for k, v in self.config.items():
                f.write(f"{k} = {v}\n")
            f.write("\n[databases]\n")
            for k, v in self.databases.items():
                f.write(f"{k} = {v}\n")
            if self.users:
                f.write("\n[users]\n")
                for k, v in self.users.items():
                    f.write(f"{k} = {v}\n")
        with open(self.config["auth_file"], "w") as f:
            for u, secret in self.userlist.items():
                f.write('"%s" "%s"\n' % (u, secret.replace('"', '""')))

    def start(self):
        self.write()
        self.log_fh = open(self.logfile, "ab")
        self.proc = subprocess.Popen([SLUICE_BIN, self.ini], stdout=self.log_fh, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pgsluice exited at start:\n" + self.log()[-3000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pgsluice did not listen:\n" + self.log()[-3000:])

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"log never matched {pattern!r}:\n" + self.log()[-3000:])

    def dsn(self, user="app", db="appdb", password=None, **params):
        parts = [f"host=127.0.0.1 port={self.port} user={user} dbname={db} connect_timeout=5"]
        if password is None and user in USERS:
            password = USERS[user][0]
        if password is not None:
            parts.append(f"password={password}")
        for k, v in params.items():
            parts.append(f"{k}='{v}'")
        return " ".join(parts)

    def connect(self, user="app", db="appdb", password=None, **kw):
        kw.setdefault("autocommit", True)
        kw.setdefault("prepare_threshold", None)
        params = kw.pop("params", {})
        return psycopg.connect(self.dsn(user, db, password, **params), **kw)

    def psql(self, args, input=None, user="app", db="appdb", timeout=30, env=None):
        e = dict(os.environ, PGCONNECT_TIMEOUT="5", PGPASSWORD=USERS.get(user, ("",))[0])
        e.update(env or {})
        return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db] + args,
                              input=input, capture_output=True, text=True, timeout=timeout, env=e)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def rewrite(self, config=None, databases=None):
        if config:
            self.config.update({k: str(v) for k, v in config.items()})
        if databases is not None:
            self.databases = databases
        self.write()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_fh.close()
        self.proc = None

    def check_sanitizers(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                raise AssertionError(f"sanitizer report in pgsluice log:\n{text[max(0, i - 500):i + 4000]}")


@pytest.fixture
def sluice(pg):
    started = []

    def make(config=None, databases=None, users=None, userlist=None):
        base = tempfile.mkdtemp(prefix="pgsluice-")
        s = Sluice(pg, base, config, databases, users, userlist)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()
    try:
        for s in started:
            s.check_sanitizers()
    finally:
        for s in started:
            shutil.rmtree(s.dir, ignore_errors=True)


