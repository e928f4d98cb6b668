"""`pgsluice --check --online`: the config doctor logs in to the real
PostgreSQL 15 of the `pg` fixture with every authentication method and
reports, one line each with the figures, pool sizes that exceed what
max_connections leaves, idle timeouts coupled with
PostgreSQL's own, a server it cannot reach and a login
PostgreSQL refuses. Exit status 1 on any ERROR, else 0."""
import os
import re
import socket
import subprocess
import threading

import pytest

from helpers import SLUICE_BIN, free_port

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
SUMMARY = re.compile(r"^(\d+) errors?, (\d+) warnings?$", re.M)


def run_doctor(path, *extra, timeout=30):
    if not os.path.exists(SLUICE_BIN):
        pytest.fail(f"pgsluice binary not found at {SLUICE_BIN}", pytrace=False)
    env = dict(os.environ)
    # Leaks count here: the doctor is one short run whose every allocation is ours to free.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([SLUICE_BIN, *extra, path], capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    for marker in SANITIZER_MARKERS:
        assert marker not in r.stderr, f"sanitizer report:\n{r.stderr}"
    r.lines = r.stdout.splitlines()
    return r


def check_online(path, timeout=30):
    r = run_doctor(path, "--check", "--online", timeout=timeout)
    m = SUMMARY.search(r.stdout)
    assert m, f"no 'N errors, M warnings' summary (rc {r.returncode}):\n{r.stdout}{r.stderr}"
    assert r.lines[-1] == m.group(0), f"the summary must be the last line:\n{r.stdout}"
    r.errors, r.warnings = int(m.group(1)), int(m.group(2))
    return r


def lines_of(r, severity):
    return [ln for ln in r.lines if ln.startswith(severity + " ")]


def write_config(tmp_path, databases, settings=None, userlist=None):
    """pgsluice.ini + userlist.txt in tmp_path; returns the ini's path.
    settings: {key: value} over the defaults below."""
    auth = tmp_path / "userlist.txt"
    users = userlist if userlist is not None else {"app": "apppass"}
    auth.write_text("".join('"%s" "%s"\n' % (u, s.replace('"', '""')) for u, s in users.items()))
    main = {"listen_addr": "127.0.0.1", "listen_port": free_port(), "unix_socket_dir": tmp_path,
            "auth_type": "md5", "auth_file": auth, "http_port": 0, "server_connect_timeout": "5s",
            "tcp_user_timeout": "10s", **(settings or {})}
    lines = ["[pgsluice]", *[f"{k} = {v}" for k, v in main.items()], "", "[databases]",
             *[f"{name} = {spec}" for name, spec in databases.items()]]
    path = tmp_path / "pgsluice.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def server_setting(pg, name):
    return int(pg.sql(f"select setting from pg_settings where name = '{name}'")[0][0])


@pytest.mark.timeout(60)
def test_pool_sum_above_max_connections_is_an_error_with_the_figures(pg, tmp_path):
    max_conn = server_setting(pg, "max_connections")
    reserved = server_setting(pg, "superuser_reserved_connections")
    usable = max_conn - reserved
    users = {"app": "apppass", "md5user": "md5pass", "scramuser": "scrampass", "passuser": "passpass",
             "someone": "x"}
    # 5 users x 30 on appdb, 5 users x 10 on postgres: 200 against the fixture's 200 - 3.
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app pool_size=30",
        "postgres": f"host=127.0.0.1 port={pg.port} dbname=postgres user=app",
    }, settings={"default_pool_size": "10"}, userlist=users)
    total = 5 * 30 + 5 * 10
    assert total > usable, "the test needs a sum above what the fixture's server leaves"

    r = check_online(path)

    assert r.returncode == 1, r.stdout + r.stderr
    server = f"127.0.0.1:{pg.port}"
    expected = (f"ERROR {server}: pools can open {total} connections (appdb 5 users x 30, postgres 5 users x 10) "
                f"but max_connections={max_conn} leaves {usable} after superuser_reserved_connections={reserved}")
    assert expected in r.lines, r.stdout
    assert r.errors == 1 and r.warnings == 0, r.stdout
    # Both logins worked: the error is about sizes only.
    assert len([ln for ln in lines_of(r, "OK") if "logged in" in ln]) == 2, r.stdout


@pytest.mark.timeout(60)
def test_max_db_connections_caps_what_an_entry_counts(pg, tmp_path):
    users = {f"user{i}": "pw" for i in range(10)}
    users["app"] = "apppass"
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app pool_size=50 max_db_connections=40",
    }, userlist=users)

    r = check_online(path)

    # 11 users x 50 = 550 would not fit; the cap of 40 does.
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(ln.startswith(f"OK 127.0.0.1:{pg.port}: pools can open 40 connections "
                             "(appdb max_db_connections=40), within") for ln in r.lines), r.stdout
    assert r.errors == 0 and r.warnings == 0, r.stdout


@pytest.fixture
def idle_role(pg):
    """A role whose sessions carry PostgreSQL idle timeouts of their own
    (role-level SET: nothing else on the shared server is touched)."""
    role = "doctor_idle"
    pg.sql(f"DROP ROLE IF EXISTS {role}")
    pg.sql(f"CREATE ROLE {role} LOGIN")
    pg.sql(f"ALTER ROLE {role} SET idle_session_timeout = '30s'")
    pg.sql(f"ALTER ROLE {role} SET idle_in_transaction_session_timeout = '20s'")
    yield role
    pg.sql(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.timeout(60)
def test_coupled_idle_timeouts_are_warnings(pg, tmp_path, idle_role):
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={idle_role} pool_size=5",
    }, settings={"server_idle_timeout": "60s", "idle_transaction_timeout": "0"})

    r = check_online(path)

    assert r.returncode == 0, f"warnings only must exit 0:\n{r.stdout}{r.stderr}"
    assert r.errors == 0 and r.warnings == 2, r.stdout
    who = f"127.0.0.1:{pg.port} db=appdb user={idle_role}"
    idle = [ln for ln in lines_of(r, "WARNING") if ln.startswith(f"WARNING {who}:") and
            "idle_session_timeout=30s" in ln]
    assert idle and "server_idle_timeout=60s" in idle[0] and "up to 60s" in idle[0], r.stdout
    intx = [ln for ln in lines_of(r, "WARNING") if ln.startswith(f"WARNING {who}:") and
            "idle_in_transaction_session_timeout=20s" in ln]
    assert intx and "idle_transaction_timeout=0 (off)" in intx[0] and "25P03" in intx[0], r.stdout


@pytest.mark.timeout(60)
def test_idle_timeouts_below_postgresql_are_clean(pg, tmp_path, idle_role):
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={idle_role} pool_size=5",
    }, settings={"server_idle_timeout": "10s", "idle_transaction_timeout": "5s"})

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    assert r.errors == 0 and r.warnings == 0, r.stdout
    # The doctor did read the role's settings: they are in its login line.
    assert any("idle_session_timeout=30s idle_in_transaction_session_timeout=20s" in ln
               for ln in lines_of(r, "OK")), r.stdout


@pytest.mark.timeout(60)
def test_server_lifetime_alone_counts_when_idle_timeout_is_off(pg, tmp_path, idle_role):
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={idle_role} pool_size=5",
    }, settings={"server_idle_timeout": "0", "server_lifetime": "30s", "server_lifetime_jitter": "0",
                 "idle_transaction_timeout": "5s"})

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    warn = lines_of(r, "WARNING")
    assert len(warn) == 1 and "server_lifetime=30s" in warn[0] and "idle_session_timeout=30s" in warn[0], r.stdout


@pytest.mark.timeout(60)
def test_clean_config_every_auth_method_and_a_unix_socket(pg, tmp_path):
    users = {"app": "apppass", "md5user": "md5pass", "scramuser": "scrampass", "passuser": "passpass"}
    p = pg.port
    path = write_config(tmp_path, {
        "md5db": f"host=127.0.0.1 port={p} dbname=appdb user=md5user",
        "scramdb": f"host=127.0.0.1 port={p} dbname=appdb user=scramuser",
        "passdb": f"host=127.0.0.1 port={p} dbname=appdb user=passuser",
        "trustdb": f"host=127.0.0.1 port={p} dbname=appdb user=trustuser",
        "sockdb": f"host={pg.socket_dir} port={p} dbname=appdb user=app",
        "*": f"host=127.0.0.1 port={p}",
    }, settings={"default_pool_size": "2", "idle_transaction_timeout": "30s"}, userlist=users)

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    assert r.errors == 0 and r.warnings == 0, r.stdout
    assert r.lines[-1] == "0 errors, 0 warnings", r.stdout
    ok = lines_of(r, "OK")
    for user, method in [("md5user", "md5"), ("scramuser", "SCRAM-SHA-256"), ("passuser", "password"),
                         ("trustuser", "trust")]:
        assert any(ln.startswith(f"OK 127.0.0.1:{p} db=appdb user={user} ") and f"logged in ({method})" in ln
                   for ln in ok), f"{user} via {method}:\n{r.stdout}"
    assert any(ln.startswith(f"OK {pg.socket_dir}:{p} db=appdb user=app ") for ln in ok), r.stdout
    # The fallback has no database and no user of its own: postgres, as the first auth_file user.
    assert any(ln.startswith(f"OK 127.0.0.1:{p} db=postgres user=app (entry *)") for ln in ok), r.stdout
    # 5 TCP entries x 4 users x 2; no size finding other than OK.
    assert any(ln.startswith(f"OK 127.0.0.1:{p}: pools can open 40 connections") for ln in ok), r.stdout
    assert any(ln.startswith(f"OK {pg.socket_dir}:{p}: pools can open 8 connections") for ln in ok), r.stdout
    assert not [ln for ln in r.lines if "pools can open" in ln and not ln.startswith("OK ")], r.stdout


@pytest.mark.timeout(60)
def test_unreachable_server_is_an_error_naming_host_and_port(pg, tmp_path):
    dead = free_port()  # bound and closed: nobody listens there
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app",
        "gone": f"host=127.0.0.1 port={dead} dbname=gonedb user=app",
    })

    r = check_online(path)

    assert r.returncode == 1, r.stdout + r.stderr
    err = lines_of(r, "ERROR")
    assert len(err) == 1, r.stdout
    assert err[0].startswith(f"ERROR 127.0.0.1:{dead} db=gonedb user=app (entry gone): cannot connect: "), r.stdout
    assert "refused" in err[0].lower(), r.stdout
    # The reachable server is still checked.
    assert any(ln.startswith(f"OK 127.0.0.1:{pg.port}: pools can open") for ln in r.lines), r.stdout


@pytest.mark.timeout(30)
def test_server_that_never_answers_is_bounded_by_server_connect_timeout(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        path = write_config(tmp_path, {"appdb": f"host=127.0.0.1 port={port} dbname=appdb user=app"},
                            settings={"server_connect_timeout": "1s"})
        r = check_online(path, timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    err = lines_of(r, "ERROR")
    assert len(err) == 1 and err[0].startswith(f"ERROR 127.0.0.1:{port} db=appdb user=app"), r.stdout
    assert "no answer within 1s (server_connect_timeout)" in err[0], r.stdout


@pytest.mark.timeout(30)
def test_a_server_that_is_not_postgresql_is_an_error(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def answer_like_http():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                conn.settimeout(10)
                try:
                    conn.recv(1024)  # until the doctor hangs up
                except OSError:
                    pass

        t = threading.Thread(target=answer_like_http, daemon=True)
        t.start()
        path = write_config(tmp_path, {"web": f"host=127.0.0.1 port={port} dbname=appdb user=app"})
        r = check_online(path, timeout=20)
        t.join(15)
    assert r.returncode == 1, r.stdout + r.stderr
    err = lines_of(r, "ERROR")
    assert len(err) == 1 and err[0].startswith(f"ERROR 127.0.0.1:{port} db=appdb user=app (entry web): "), r.stdout
    assert "not a PostgreSQL server?" in err[0], r.stdout


@pytest.mark.timeout(60)
def test_a_host_name_is_resolved(pg, tmp_path):
    path = write_config(tmp_path, {"appdb": f"host=localhost port={pg.port} dbname=appdb user=app"},
                        settings={"idle_transaction_timeout": "5s"})

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    assert any(ln.startswith(f"OK localhost:{pg.port} db=appdb user=app (entry appdb): logged in")
               for ln in r.lines), r.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("user", ["md5user", "scramuser", "passuser"])
def test_wrong_password_is_an_error_with_postgresql_own_message(pg, tmp_path, user):
    path = write_config(tmp_path, {
        "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user={user} password=wrong",
    })

    r = check_online(path)

    assert r.returncode == 1, r.stdout + r.stderr
    err = lines_of(r, "ERROR")
    assert len(err) == 1, r.stdout
    assert err[0].startswith(f"ERROR 127.0.0.1:{pg.port} db=appdb user={user} (entry appdb): "
                             "PostgreSQL refused the login: FATAL 28P01: "), r.stdout
    assert f'password authentication failed for user "{user}"' in err[0], r.stdout
    assert "wrong" not in err[0], "the password must never be printed"


@pytest.mark.timeout(60)
def test_unknown_database_is_postgresql_own_error(pg, tmp_path):
    path = write_config(tmp_path, {"nodb": f"host=127.0.0.1 port={pg.port} dbname=no_such_db user=app"})

    r = check_online(path)

    assert r.returncode == 1, r.stdout
    err = lines_of(r, "ERROR")
    assert len(err) == 1 and 'FATAL 3D000: database "no_such_db" does not exist' in err[0], r.stdout


@pytest.mark.timeout(60)
def test_scram_secret_in_auth_file_cannot_be_checked_and_says_so(pg, tmp_path):
    path = write_config(tmp_path, {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=scramuser"},
                        userlist={"scramuser": pg.scram_secret("scramuser")})

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    warn = lines_of(r, "WARNING")
    assert len(warn) == 1 and "not checked" in warn[0] and "SCRAM secret" in warn[0], r.stdout
    assert any(f"127.0.0.1:{pg.port}: pool sizes not checked" in ln for ln in lines_of(r, "INFO")), r.stdout


@pytest.mark.timeout(60)
def test_tcp_keepalive_off_and_no_user_timeout_are_warnings(pg, tmp_path):
    path = write_config(tmp_path, {"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app"},
                        settings={"tcp_keepalive": "0", "tcp_user_timeout": "0",
                                  "idle_transaction_timeout": "5s"})

    r = check_online(path)

    assert r.returncode == 0, r.stdout + r.stderr
    warn = lines_of(r, "WARNING")
    assert len(warn) == 2, r.stdout
    assert any("tcp_keepalive=0" in ln for ln in warn) and any("tcp_user_timeout=0" in ln for ln in warn), r.stdout


@pytest.mark.timeout(30)
def test_online_without_check_is_a_usage_error(tmp_path):
    path = write_config(tmp_path, {"appdb": "host=127.0.0.1 port=5432 dbname=appdb"})
    r = run_doctor(path, "--online")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--online" in r.stderr, r.stderr


@pytest.mark.timeout(30)
def test_invalid_config_is_not_checked_online(tmp_path):
    path = write_config(tmp_path, {"appdb": "host=127.0.0.1 port=5432 dbname=appdb"},
                        settings={"default_pool_size": "lots"})
    r = run_doctor(path, "--check", "--online")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not valid" in r.stderr and not SUMMARY.search(r.stdout), r.stdout + r.stderr
