"""Fixtures for the integration tests.

- `pg` (session): a throwaway PostgreSQL 15 on a kernel-chosen loopback port
  with roles for every authentication method and a database `appdb`.
- `sluice` (function): a factory that writes a pgsluice ini, starts
  $PGSLUICE_BIN on a free port and stops it at teardown, then fails the test
  if the pooler's log holds a sanitizer report or the pooler died.
- `table`: a table name unique to the test, dropped before and after.

Everything listens on 127.0.0.1 or on unix sockets in temp dirs; every
process started here is killed by a finalizer, even when the test fails.
On failure, the tail of each pooler log (and of the PostgreSQL log since
the test began) is attached to the report.

This is the one conftest.py of the integration suite (incidents/ uses it
too). Test modules import helpers from helpers.py / pgwire.py / faults.py,
never from this file.
"""
import collections
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
from psycopg.conninfo import make_conninfo

from helpers import SLUICE_BIN, free_port, object_name, wait_until

PGBIN = "/usr/lib/postgresql/15/bin"

# Roles on the test server: name -> (password, how PostgreSQL stores it,
# pg_hba method for 127.0.0.1). `app` owns appdb and is trusted by the
# server (the catch-all line), so pooling tests need no passwords.
ROLES = {
    "trustuser": (None, None, "trust"),
    "md5user": ("md5pass", "md5", "md5"),
    "scramuser": ("scrampass", "scram-sha-256", "scram-sha-256"),
    "passuser": ("passpass", "scram-sha-256", "password"),
    "app": ("apppass", "scram-sha-256", None),
}
PASSWORDS = {u: p for u, (p, _, _) in ROLES.items() if p}

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "ThreadSanitizer", "LeakSanitizer")

Backend = collections.namedtuple(
    "Backend", "pid usename datname state query application_name client_port xact_start wait_event")


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


def _as_postgres_kw():
    """PostgreSQL refuses to run as root: drop to user postgres."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


# --------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pgsl-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgresql.log")
        self.socket_dir = self.dir
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o755)

    # -- lifecycle

    def init(self):
        r = subprocess.run([f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C", "--no-sync"],
                           capture_output=True, text=True, timeout=120, cwd=self.dir, **_as_postgres_kw())
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            for user, (_, _, method) in ROLES.items():
                if method:
                    f.write(f"host all {user} 127.0.0.1/32 {method}\n")
            f.write("host all all 127.0.0.1/32 trust\n"
                    "local all all trust\n")

    def _write_conf(self):
        with open(os.path.join(self.data, "postgresql.auto.conf"), "w") as f:
            f.write(f"listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "max_connections = 200\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "log_line_prefix = '%m [%p] %q%u@%d '\n"
                    "log_connections = on\n"
                    "log_disconnections = on\n")

    def _spawn(self):
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen([f"{PGBIN}/postgres", "-D", self.data], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True, **_as_postgres_kw())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not become ready in 30s:\n" + _tail(self.log()))

    def start(self, keep_port=False):
        for _ in range(5):
            if not keep_port or self.port is None:
                self.port = free_port()
            self._write_conf()
            offset = len(self.log())
            if self._spawn():
                return
            out = self.log()[offset:]
            if keep_port or ("could not bind" not in out and "already in use" not in out):
                raise RuntimeError("PostgreSQL failed to start:\n" + _tail(out))
        raise RuntimeError("PostgreSQL: no free port after 5 tries")

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)  # SIGINT: fast shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)  # immediate shutdown
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        self.proc = None

    def restart(self):
        """Fast shutdown (every backend gets FATAL 57P01) and start again on
        the same port."""
        self.stop()
        self.start(keep_port=True)

    def setup_roles(self):
        for user, (password, storage, _) in ROLES.items():
            if password:
                self.sql(f"SET password_encryption = '{storage}'; "
                         f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
            else:
                self.sql(f"CREATE ROLE {user} LOGIN")
        self.sql("CREATE DATABASE appdb OWNER app")

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- access

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dsn(self, user="postgres", db="postgres", password=None, **params):
        kw = dict(host=self.host, port=self.port, user=user, dbname=db, connect_timeout=5,
                  sslmode="disable", gssencmode="disable")
        if password is not None:
            kw["password"] = password
        kw.update(params)
        return make_conninfo(**kw)

    def connect(self, user="postgres", db="postgres", password=None, autocommit=True, **params):
        """A direct (not pooled) connection over TCP."""
        return psycopg.connect(self.dsn(user, db, password, **params), autocommit=autocommit)

    def sql(self, query, params=None, db="postgres"):
        """Run query as superuser over the unix socket; rows (or None)."""
        with psycopg.connect(host=self.socket_dir, port=self.port, user="postgres", dbname=db,
                             autocommit=True, connect_timeout=5) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else None

    def backends(self, db=None, user=None):
        """Client backends on the server, without our own query's."""
        rows = self.sql(
            "SELECT pid, usename, datname, state, query, application_name, client_port, xact_start, "
            "wait_event FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        out = [Backend(*r) for r in rows]
        return [b for b in out if (db is None or b.datname == db) and (user is None or b.usename == user)]

    def terminate(self, pid):
        return self.sql("SELECT pg_terminate_backend(%s)", [pid])[0][0]

    def scram_secret(self, user):
        return self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [user])[0][0]


@pytest.fixture(scope="session")
def pg():
    p = Postgres()
    try:
        p.init()
        p.start()
        p.setup_roles()
    except BaseException as e:
        log = p.log()
        p.cleanup()
        pytest.fail(f"could not set up PostgreSQL 15: {e}\n{_tail(log)}", pytrace=False)
    yield p
    p.cleanup()


@pytest.fixture
def table(pg, request):
    """Name of a table unique to this test in appdb (dropped before and after)."""
    name = object_name(request)
    pg.sql(f"DROP TABLE IF EXISTS {name}", db="appdb")
    yield name
    try:
        pg.sql(f"DROP TABLE IF EXISTS {name}", db="appdb")
    except psycopg.Error:
        pass


# --------------------------------------------------------------------------
# pgsluice


class Sluice:
    CONNECT_KW = ("autocommit", "prepare_threshold", "row_factory", "cursor_factory", "context")

    def __init__(self, pg, config_overrides=None, databases=None, users=None, userlist=None,
                 section="pgsluice", env=None):
        self.pg = pg
        self.dir = tempfile.mkdtemp(prefix="pgsl-")
        os.chmod(self.dir, 0o755)
        self.ini = os.path.join(self.dir, "pgsluice.ini")
        self.logfile = os.path.join(self.dir, "pgsluice.log")
        self.auth_file = os.path.join(self.dir, "userlist.txt")
        self.section = section
        self.env = env or {}
        self.proc = None
        self.port = None
        self.expected_exit = False
        self.config = {
            "listen_addr": "127.0.0.1",
            "listen_port": None,  # a free port, chosen at start
            "unix_socket_dir": self.dir,
            "auth_type": "trust",
            "auth_file": self.auth_file,
            "admin_users": "postgres",
            "http_port": "0",
            "workers": "2",
            "pool_mode": "transaction",
            "default_pool_size": "10",
        }
        self._apply(self.config, config_overrides)
        self.databases = dict(databases) if databases is not None else self.default_databases()
        self.users = dict(users or {})
        self.userlist = dict(userlist) if userlist is not None else dict(PASSWORDS)

    def default_databases(self):
        p = self.pg.port
        return {
            "appdb": f"host=127.0.0.1 port={p} dbname=appdb",
            "postgres": f"host=127.0.0.1 port={p}",
            "*": f"host=127.0.0.1 port={p}",
        }

    @staticmethod
    def _apply(target, overrides):
        for k, v in (overrides or {}).items():
            target[k] = None if v is None else str(v)

    # -- files

    def write(self):
        lines = [f"[{self.section}]"]
        lines += [f"{k} = {v}" for k, v in self.config.items() if v is not None]
        lines += ["", "[databases]"]
        lines += [f"{k} = {v}" for k, v in self.databases.items()]
        if self.users:
            lines += ["", "[users]"]
            lines += [f"{k} = {v}" for k, v in self.users.items()]
        with open(self.ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.auth_file, "w") as f:
            for u, secret in self.userlist.items():
                f.write('"%s" "%s"\n' % (u.replace('"', '""'), secret.replace('"', '""')))

    def rewrite(self, config_overrides=None, databases=None, users=None, userlist=None, raw=None):
        """Change the files on disk (a running pooler sees them on reload()).
        A None value removes a key; raw replaces the ini text entirely."""
        self._apply(self.config, config_overrides)
        if databases is not None:
            self.databases = dict(databases)
        if users is not None:
            self.users = dict(users)
        if userlist is not None:
            self.userlist = dict(userlist)
        self.write()
        if raw is not None:
            with open(self.ini, "w") as f:
                f.write(raw)

    # -- process

    def start(self):
        if not os.path.exists(SLUICE_BIN):
            pytest.fail(f"pgsluice binary not found at {SLUICE_BIN} (build it, or set PGSLUICE_BIN)",
                        pytrace=False)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=0")
        env.update(self.env)
        fixed_port = self.config.get("listen_port")
        for _ in range(5):
            self.port = int(fixed_port) if fixed_port else free_port()
            self.config["listen_port"] = str(self.port)
            self.write()
            offset = len(self.log())
            self.proc = self._spawn(env)
            state = self._wait_listening(10.0)
            if state == "up":
                return self
            out = self.log()[offset:]
            if state == "exited" and not fixed_port and re.search(r"in use|EADDRINUSE", out, re.I):
                continue  # someone took the port between our probe and its bind: try another
            self.kill()
            self.expected_exit = True
            rc = self.proc.returncode
            what = ("did not accept connections within 10s" if state != "exited"
                    else f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}")
            pytest.fail(f"pgsluice {what} at start\n--- {self.ini} ---\n{self.config_text()}"
                        f"--- log ---\n{_tail(out)}", pytrace=False)
        pytest.fail("pgsluice: no free port after 5 tries:\n" + self.log_tail(), pytrace=False)

    def _spawn(self, env):
        # EACCES/ETXTBSY: the binary is being relinked by a concurrent make; wait a little
        deadline = time.monotonic() + 5
        while True:
            try:
                with open(self.logfile, "ab") as log:
                    return subprocess.Popen([SLUICE_BIN, self.ini], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.dir, env=env,
                                            start_new_session=True)
            except (PermissionError, OSError) as e:
                if time.monotonic() > deadline or e.errno not in (13, 26):
                    raise
                time.sleep(0.2)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return "exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    return "timeout"
                time.sleep(0.02)
        # the unix socket is usually created with the TCP one; give it a moment
        sock = self.unix_socket_path()
        if sock:
            wait_until(lambda: os.path.exists(sock), timeout=max(0.0, min(2.0, deadline - time.monotonic())))
        return "up" if self.proc.poll() is None else "exited"

    def unix_socket_path(self):
        d = self.config.get("unix_socket_dir")
        return os.path.join(d, f".s.PGSQL.{self.port}") if d else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def reload(self):
        """SIGHUP: the pooler re-reads its files."""
        assert self.alive(), "pgsluice is not running:\n" + self.log_tail()
        self.proc.send_signal(signal.SIGHUP)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGINT, timeout=5.0):
        """Stop the pooler (sig, then SIGKILL after timeout). Returns the exit status."""
        if self.proc is None:
            return None
        self.expected_exit = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    # -- logs

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=60):
        return _tail(self.log(), n)

    def log_offset(self):
        return len(self.log())

    def wait_log(self, regex, timeout=5.0, since=0):
        """Wait until regex (case-insensitive, multiline) matches the log
        from character offset since; returns the match."""
        pat = re.compile(regex, re.I | re.M)
        m = wait_until(lambda: pat.search(self.log()[since:]), timeout=timeout)
        assert m, f"pgsluice log never matched {regex!r} within {timeout}s:\n{self.log_tail()}"
        return m

    def config_text(self):
        try:
            with open(self.ini) as f:
                return f.read()
        except OSError:
            return ""

    def sanitizer_report(self):
        text = self.log()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                start = text.rfind("\n", 0, max(0, i - 300)) + 1
                return text[start:i + 6000]
        return None

    # -- clients

    def dsn(self, user="app", db="appdb", password=None, **params):
        kw = dict(host="127.0.0.1", port=self.port, user=user, dbname=db, connect_timeout=5,
                  sslmode="disable", gssencmode="disable")
        if password is not None:
            kw["password"] = password
        kw.update(params)
        return make_conninfo(**kw)

    def connect(self, user="app", db="appdb", **kw):
        """psycopg connection through the pooler. Keyword arguments that are
        not psycopg connect options are libpq parameters (password, options,
        application_name, host, ...). Defaults: autocommit, no automatic
        server-side prepare."""
        ckw = {k: kw.pop(k) for k in list(kw) if k in self.CONNECT_KW}
        ckw.setdefault("autocommit", True)
        ckw.setdefault("prepare_threshold", None)
        return psycopg.connect(self.dsn(user, db, **kw), **ckw)

    def psql(self, args, input=None, user="app", db="appdb", timeout=30, env=None, host="127.0.0.1"):
        """Run psql against the pooler; returns CompletedProcess (text).
        args is a list of psql arguments, or a string run with -c."""
        if isinstance(args, str):
            args = ["-c", args]
        e = dict(os.environ, PGCONNECT_TIMEOUT="5", PGGSSENCMODE="disable")
        e.pop("PGPASSWORD", None)
        e.update(env or {})
        cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(self.port), "-U", user, "-d", db]
        return subprocess.run(cmd + list(args), input=input, capture_output=True, text=True,
                              timeout=timeout, env=e)

    # -- what the pooler holds

    def server_ports(self):
        """Local ports of this pooler's established TCP connections to the
        PostgreSQL port (from /proc: independent of the pooler's own view)."""
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{self.pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            return set()
        ports = set()
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{self.pid}/net/{table}") as f:
                    next(f)
                    for line in f:
                        cols = line.split()
                        local, remote, st, inode = cols[1], cols[2], cols[3], cols[9]
                        if inode in inodes and st == "01" and int(remote.rsplit(":", 1)[1], 16) == self.pg.port:
                            ports.add(int(local.rsplit(":", 1)[1], 16))
            except OSError:
                pass
        return ports

    def backends(self, state=None):
        """pg_stat_activity rows of this pooler's server connections."""
        ports = self.server_ports()
        return [b for b in self.pg.backends() if b.client_port in ports and (state is None or b.state == state)]

    def proc_status(self, field):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def peak_rss_kb(self):
        return self.proc_status("VmHWM")

    def rss_kb(self):
        return self.proc_status("VmRSS")

    def is_sanitized(self):
        """True when the binary runs under ASan/TSan (its RSS is then the
        sanitizer's as much as ours)."""
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                if re.search(r"lib(asan|tsan|hwasan)", f.read()):
                    return True
            with open(SLUICE_BIN, "rb") as f:
                data = f.read()
            return b"__asan_init" in data or b"__tsan_init" in data
        except OSError:
            return False


@pytest.fixture
def sluice(pg, request):
    """Factory: sluice(config_overrides=None, databases=None, users=None,
    userlist=None, section='pgsluice', env=None, start=True) -> Sluice."""
    started = []
    request.node._sluices = started
    request.node._pg = pg
    request.node._pg_log_offset = len(pg.log())

    def make(config_overrides=None, databases=None, users=None, userlist=None, section="pgsluice", env=None,
             start=True):
        s = Sluice(pg, config_overrides, databases, users, userlist, section, env)
        started.append(s)
        return s.start() if start else s

    yield make

    problems = []
    for s in started:
        if s.proc is not None and s.proc.poll() is not None and not s.expected_exit:
            rc = s.proc.returncode
            why = f"signal {-rc}" if rc < 0 else f"status {rc}"
            problems.append(f"pgsluice (pid {s.proc.pid}) exited during the test with {why}:\n{s.log_tail(80)}")
        s.stop()
        s.kill()
    for s in started:
        rep = s.sanitizer_report()
        if rep:
            problems.append(f"sanitizer report in pgsluice log {s.logfile}:\n{rep}")
    if not problems and not os.environ.get("PGSLUICE_KEEP"):
        for s in started:
            shutil.rmtree(s.dir, ignore_errors=True)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed or rep.when == "teardown":
        return
    for i, s in enumerate(getattr(item, "_sluices", [])):
        rep.sections.append((f"pgsluice[{i}] log tail ({s.logfile})", s.log_tail(80)))
    pg = getattr(item, "_pg", None)
    if pg is not None:
        # without the fixture's own superuser connections over the unix socket
        lines = [ln for ln in pg.log()[getattr(item, "_pg_log_offset", 0):].splitlines()
                 if "host=[local]" not in ln and "postgres@postgres" not in ln]
        rep.sections.append(("postgresql log since the test began", _tail("\n".join(lines), 40)))
