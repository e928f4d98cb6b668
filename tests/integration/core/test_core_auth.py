"""Authentication on both sides: clients against the auth_file with every
auth_type and secret kind, and pgsluice logging in to PostgreSQL."""
import psycopg
import pytest

from coreutil import USERS, md5_secret


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256"])
def test_client_auth_plaintext_secret(sluice, auth_type):
    s = sluice({"auth_type": auth_type})
    with s.connect() as c:
        assert c.execute("select current_user").fetchone() == ("app",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5"])
def test_client_auth_md5_secret(sluice, pg, auth_type):
    ul = {u: p for u, (p, _) in USERS.items()}
    ul["md5user"] = md5_secret("md5user", "md5pass")
    s = sluice({"auth_type": auth_type}, userlist=ul)
    with s.connect(user="md5user", db="postgres") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_scram_secret_pass_through(sluice, pg, auth_type):
    ul = {"scramuser": pg.scram_secret("scramuser")}
    s = sluice({"auth_type": auth_type}, userlist=ul)
    with s.connect(user="scramuser", db="postgres") as c:
        assert c.execute("select current_user").fetchone() == ("scramuser",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256"])
def test_wrong_password(sluice, auth_type):
    s = sluice({"auth_type": auth_type})
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(password="nope")
    assert e.value.sqlstate == "28P01" or "password authentication failed" in str(e.value)


@pytest.mark.timeout(30)
def test_unknown_user(sluice):
    s = sluice({"auth_type": "md5"})
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(user="nobody", password="x")
    assert e.value.sqlstate in ("28000", "28P01") or "no such user" in str(e.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("user,db", [("md5user", "postgres"), ("scramuser", "postgres"),
                                     ("passuser", "postgres"), ("trustuser", "postgres"), ("app", "appdb")])
def test_server_login_methods(sluice, user, db):
    s = sluice()
    with s.connect(user=user, db=db) as c:
        assert c.execute("select current_user").fetchone() == (user,)


@pytest.mark.timeout(30)
def test_server_login_with_md5_secret(sluice):
    ul = {"md5user": md5_secret("md5user", "md5pass")}
    s = sluice(userlist=ul)
    with s.connect(user="md5user", db="postgres") as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(30)
def test_password_in_database_entry(sluice, pg):
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=app password=apppass"},
               userlist={})
    with s.connect(user="whoever", password="") as c:
        assert c.execute("select current_user").fetchone() == ("app",)
