"""pgsluice --check and the command line."""
import os
import subprocess

import pytest

from coreutil import SLUICE_BIN


def run(*args):
    return subprocess.run([SLUICE_BIN, *args], capture_output=True, text=True, timeout=20)


def write(tmp_path, text, name="p.ini"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.timeout(30)
def test_check_good(tmp_path):
    path = write(tmp_path, "[pgsluice]\nlisten_port = 6433\n[databases]\nappdb = host=127.0.0.1 port=5432\n")
    r = run("--check", path)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(30)
def test_check_bad_value_names_line(tmp_path):
    path = write(tmp_path, "[pgsluice]\nlisten_port = 6433\ndefault_pool_size = many\n")
    r = run("--check", path)
    assert r.returncode == 1
    assert f"{path}:3" in r.stderr


@pytest.mark.timeout(30)
def test_check_unknown_key_suggests(tmp_path):
    path = write(tmp_path, "[pgsluice]\ndefault_pool_sise = 5\n")
    r = run("--check", path)
    assert r.returncode == 0
    assert "did you mean" in r.stderr and "default_pool_size" in r.stderr


@pytest.mark.timeout(30)
def test_pgbouncer_section_alias(tmp_path):
    path = write(tmp_path, "[pgbouncer]\nlisten_port = 6433\npool_mode = transaction\n"
                           "[databases]\n* = host=127.0.0.1\n")
    r = run("--check", path)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(30)
def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("pgsluice ")
    r = run("--help")
    assert r.returncode == 0 and "--check" in r.stdout


@pytest.mark.timeout(30)
def test_start_with_bad_config_fails(tmp_path):
    path = write(tmp_path, "[pgsluice]\npool_mode = statement\n")
    r = run(path)
    assert r.returncode != 0
    assert path in r.stderr


@pytest.mark.timeout(30)
def test_missing_file():
    r = run("--check", "/nonexistent/pgsluice.ini")
    assert r.returncode == 1
