"""The command line: --check validates a config (exit 0/1, problems named
FILE:LINE, unknown keys get a "did you mean"), --version, --help, the
[pgbouncer] section alias, and a fatal startup error that names the file
and line."""
import os
import subprocess

import pytest

from helpers import SLUICE_BIN, free_port


def run(*args, timeout=15):
    if not os.path.exists(SLUICE_BIN):
        pytest.fail(f"pgsluice binary not found at {SLUICE_BIN}", pytrace=False)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    r = subprocess.run([SLUICE_BIN, *args], capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    r.output = r.stdout + r.stderr
    return r


def write_ini(tmp_path, main_lines, section="pgsluice", name="pgsluice.ini"):
    """An ini whose main section holds main_lines (after listen_addr and
    listen_port). Returns (path, {line text: line number})."""
    lines = [f"[{section}]", "listen_addr = 127.0.0.1", f"listen_port = {free_port()}",
             f"unix_socket_dir = {tmp_path}", "auth_type = trust", "http_port = 0", *main_lines,
             "", "[databases]", "appdb = host=127.0.0.1 port=5432 dbname=appdb", "* = host=127.0.0.1 port=5432"]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path), {text: i + 1 for i, text in enumerate(lines)}


def names_line(output, path, line):
    """FILE:LINE with the path as given or its base name."""
    return f"{path}:{line}" in output or f"{os.path.basename(path)}:{line}" in output


@pytest.mark.timeout(30)
def test_check_good_config(tmp_path):
    path, _ = write_ini(tmp_path, ["pool_mode = transaction", "default_pool_size = 10", "workers = 2"])
    r = run("--check", path)
    assert r.returncode == 0, r.output


@pytest.mark.timeout(30)
@pytest.mark.parametrize("bad", ["default_pool_size = lots", "pool_mode = sometimes",
                                 "query_wait_timeout = 5 parsecs", "listen_port = 99999",
                                 "auth_type = telepathy"])
def test_check_bad_value_names_file_and_line(tmp_path, bad):
    path, lines = write_ini(tmp_path, ["default_pool_size = 10", bad])
    r = run("--check", path)
    assert r.returncode == 1, f"rc {r.returncode}: {r.output}"
    assert names_line(r.output, path, lines[bad]), f"no {path}:{lines[bad]} in: {r.output}"


@pytest.mark.timeout(30)
def test_check_unknown_key_did_you_mean(tmp_path):
    path, lines = write_ini(tmp_path, ["default_pool_sise = 5"])
    r = run("--check", path)
    assert "did you mean" in r.output.lower(), r.output
    assert "default_pool_size" in r.output, r.output
    assert names_line(r.output, path, lines["default_pool_sise = 5"]), r.output
    assert r.returncode == 0, f"an unknown key is a warning, not an error: rc {r.returncode}: {r.output}"


@pytest.mark.timeout(30)
def test_check_durations_with_units(tmp_path):
    path, _ = write_ini(tmp_path, ["query_wait_timeout = 500ms", "server_lifetime = 5min",
                                   "client_idle_timeout = 10s", "server_idle_timeout = 60"])
    r = run("--check", path)
    assert r.returncode == 0, r.output


@pytest.mark.timeout(30)
def test_check_accepts_pgbouncer_section(tmp_path):
    path, _ = write_ini(tmp_path, ["pool_mode = session", "default_pool_size = 5"], section="pgbouncer")
    r = run("--check", path)
    assert r.returncode == 0, r.output


@pytest.mark.timeout(30)
def test_check_missing_file(tmp_path):
    path = str(tmp_path / "nope.ini")
    r = run("--check", path)
    assert r.returncode != 0
    assert "nope.ini" in r.output, r.output


@pytest.mark.timeout(30)
def test_version():
    r = run("--version")
    assert r.returncode == 0, r.output
    assert "pgsluice" in r.output.lower()


@pytest.mark.timeout(30)
def test_help():
    r = run("--help")
    assert r.returncode == 0, r.output
    assert "--check" in r.output


@pytest.mark.timeout(30)
def test_fatal_startup_error_names_file_and_line(tmp_path):
    bad = "default_pool_size = -3"
    path, lines = write_ini(tmp_path, [bad])
    r = run(path, timeout=15)
    assert r.returncode != 0, r.output
    assert names_line(r.output, path, lines[bad]), r.output


@pytest.mark.timeout(30)
def test_pgbouncer_section_runs(sluice):
    s = sluice({"pool_mode": "session"}, section="pgbouncer")
    with s.connect() as c:
        assert c.execute("select current_setting('application_name') is not null").fetchone() == (True,)
    r = s.psql(["-At", "-c", "SHOW VERSION"], user="postgres", db="pgbouncer")
    assert r.returncode == 0 and "pgsluice" in r.stdout.lower(), r.stderr


def write_text(tmp_path, text, name="p.ini"):
    """An ini file holding exactly text; returns its path."""
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.timeout(30)
def test_check_good(tmp_path):
    path = write_text(tmp_path, "[pgsluice]\nlisten_port = 6433\n[databases]\nappdb = host=127.0.0.1 port=5432\n")
    r = run("--check", path, timeout=20)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(30)
def test_check_bad_value_names_line(tmp_path):
    path = write_text(tmp_path, "[pgsluice]\nlisten_port = 6433\ndefault_pool_size = many\n")
    r = run("--check", path, timeout=20)
    assert r.returncode == 1
    assert f"{path}:3" in r.stderr


@pytest.mark.timeout(30)
def test_check_unknown_key_suggests(tmp_path):
    path = write_text(tmp_path, "[pgsluice]\ndefault_pool_sise = 5\n")
    r = run("--check", path, timeout=20)
    assert r.returncode == 0
    assert "did you mean" in r.stderr and "default_pool_size" in r.stderr


@pytest.mark.timeout(30)
def test_pgbouncer_section_alias(tmp_path):
    path = write_text(tmp_path, "[pgbouncer]\nlisten_port = 6433\npool_mode = transaction\n"
                                "[databases]\n* = host=127.0.0.1\n")
    r = run("--check", path, timeout=20)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(30)
def test_version_and_help():
    r = run("--version", timeout=20)
    assert r.returncode == 0 and r.stdout.startswith("pgsluice ")
    r = run("--help", timeout=20)
    assert r.returncode == 0 and "--check" in r.stdout


@pytest.mark.timeout(30)
def test_start_with_bad_config_fails(tmp_path):
    path = write_text(tmp_path, "[pgsluice]\npool_mode = statement\n")
    r = run(path, timeout=20)
    assert r.returncode != 0
    assert path in r.stderr


@pytest.mark.timeout(30)
def test_missing_file():
    r = run("--check", "/nonexistent/pgsluice.ini", timeout=20)
    assert r.returncode == 1
