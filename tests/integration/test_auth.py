"""Authentication on both sides of the pooler.

Client side: auth_type trust, plain, md5 and scram-sha-256 against
userlist.txt secrets in plaintext, md5 and SCRAM form. Server side: the
pooler logs in to PostgreSQL with md5, scram-sha-256, password and trust,
using the userlist secret or a password= in the [databases] entry.

psycopg reports login failures as OperationalError without a SQLSTATE
(libpq has no result object during connection), so the exact SQLSTATE is
checked with a raw protocol login (pgwire.login_error)."""
import psycopg
import pytest

import pgwire
from helpers import md5_secret

# pgsluice auth_type -> what libpq/pgwire must answer
CLIENT_AUTH = ["plain", "md5", "scram-sha-256"]


def login_ok(s, user, password, db="appdb"):
    with s.connect(user=user, db=db, password=password) as c:
        return c.execute("select current_user, 1").fetchone()


# ---------------------------------------------------------------- client side

@pytest.mark.timeout(30)
def test_trust_needs_no_password(sluice):
    s = sluice({"auth_type": "trust"}, userlist={})
    with s.connect(user="trustuser") as c:
        assert c.execute("select current_user").fetchone() == ("trustuser",)
    with pgwire.connect(s.port, user="app") as w:
        assert w.query_ok("select current_user").rows == [("app",)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", CLIENT_AUTH)
def test_plaintext_secret(sluice, auth_type):
    s = sluice({"auth_type": auth_type}, userlist={"app": "apppass"})
    assert login_ok(s, "app", "apppass") == ("app", 1)
    with pgwire.connect(s.port, user="app", password="apppass") as w:
        assert w.query_ok("select 2").rows == [("2",)]


@pytest.mark.timeout(30)
def test_md5_secret_in_userlist(sluice):
    s = sluice({"auth_type": "md5"}, userlist={"app": md5_secret("app", "apppass")})
    assert login_ok(s, "app", "apppass") == ("app", 1)


@pytest.mark.timeout(30)
def test_scram_secret_in_userlist(sluice):
    """A SCRAM secret the pooler only verifies against (server trusts app)."""
    s = sluice({"auth_type": "scram-sha-256"}, userlist={"app": pgwire.scram_secret("apppass")})
    assert login_ok(s, "app", "apppass") == ("app", 1)
    with pgwire.connect(s.port, user="app", password="apppass") as w:  # also checks the server signature
        assert w.query_ok("select 3").rows == [("3",)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", CLIENT_AUTH)
def test_wrong_password_is_28P01(sluice, auth_type):
    s = sluice({"auth_type": auth_type}, userlist={"app": "apppass"})
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(user="app", password="not-the-password")
    assert "password" in str(e.value).lower() or "authentication" in str(e.value).lower(), str(e.value)
    fields = pgwire.login_error(s.port, user="app", password="not-the-password")
    assert fields["C"] == "28P01", fields
    # the right password still works afterwards
    assert login_ok(s, "app", "apppass") == ("app", 1)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_unknown_user(sluice, auth_type):
    s = sluice({"auth_type": auth_type}, userlist={"app": "apppass"})
    with pytest.raises(psycopg.OperationalError):
        s.connect(user="nobody", password="whatever")
    fields = pgwire.login_error(s.port, user="nobody", password="whatever")
    assert fields["C"] in ("28P01", "28000"), fields


@pytest.mark.timeout(30)
def test_md5_secret_wrong_password(sluice):
    s = sluice({"auth_type": "md5"}, userlist={"app": md5_secret("app", "apppass")})
    fields = pgwire.login_error(s.port, user="app", password="apppas")
    assert fields["C"] == "28P01", fields


# ---------------------------------------------------------------- server side

@pytest.mark.timeout(30)
@pytest.mark.parametrize("client_auth", ["trust", "md5"])
@pytest.mark.parametrize("user,password", [("md5user", "md5pass"), ("scramuser", "scrampass"),
                                           ("passuser", "passpass")])
def test_server_login_with_plaintext_userlist(sluice, user, password, client_auth):
    """md5user: server md5; scramuser: server scram-sha-256; passuser:
    server asks for a cleartext password. The pooler answers from the
    userlist's plaintext."""
    s = sluice({"auth_type": client_auth}, userlist={user: password})
    assert login_ok(s, user, password) == (user, 1)
    with pgwire.connect(s.port, user=user, password=password) as w:
        assert w.query_ok("select current_user").rows == [(user,)]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("client_auth", ["trust", "md5"])
def test_server_md5_login_with_md5_secret(sluice, client_auth):
    s = sluice({"auth_type": client_auth}, userlist={"md5user": md5_secret("md5user", "md5pass")})
    assert login_ok(s, "md5user", "md5pass") == ("md5user", 1)


@pytest.mark.timeout(30)
def test_scram_pass_through_with_stored_secret(sluice, pg):
    """userlist holds the server's own SCRAM secret (no plaintext): the
    client's SCRAM proof lets the pooler log in to the server with SCRAM."""
    secret = pg.scram_secret("scramuser")
    assert secret.startswith("SCRAM-SHA-256$")
    s = sluice({"auth_type": "scram-sha-256"}, userlist={"scramuser": secret})
    assert login_ok(s, "scramuser", "scrampass") == ("scramuser", 1)
    # a second client reuses or opens a server connection the same way
    with pgwire.connect(s.port, user="scramuser", password="scrampass") as w:
        assert w.query_ok("select current_user").rows == [("scramuser",)]
    fields = pgwire.login_error(s.port, user="scramuser", password="wrong")
    assert fields["C"] == "28P01", fields


@pytest.mark.timeout(30)
def test_scram_pass_through_session_mode(sluice, pg):
    s = sluice({"auth_type": "scram-sha-256", "pool_mode": "session"},
               userlist={"scramuser": pg.scram_secret("scramuser")})
    for _ in range(3):
        assert login_ok(s, "scramuser", "scrampass") == ("scramuser", 1)


@pytest.mark.timeout(30)
def test_server_trust_user_without_userlist_entry(sluice):
    s = sluice({"auth_type": "trust"}, userlist={})
    assert login_ok(s, "trustuser", None) == ("trustuser", 1)


@pytest.mark.timeout(30)
def test_database_entry_with_user_and_password(sluice, pg):
    """[databases] pwdb = ... user=md5user password=md5pass: whoever the
    client is, the server connection is md5user's, logged in with the
    entry's password (the userlist has no md5user)."""
    dbs = {"pwdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=md5user password=md5pass",
           "appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb"}
    s = sluice({"auth_type": "trust"}, databases=dbs, userlist={})
    with s.connect(user="app", db="pwdb") as c:
        assert c.execute("select current_user, current_database()").fetchone() == ("md5user", "appdb")


@pytest.mark.timeout(30)
def test_database_entry_with_password_only(sluice, pg):
    """password= without user=: used for the client's own user."""
    dbs = {"scramdb": f"host=127.0.0.1 port={pg.port} dbname=appdb password=scrampass"}
    s = sluice({"auth_type": "trust"}, databases=dbs, userlist={})
    with s.connect(user="scramuser", db="scramdb") as c:
        assert c.execute("select current_user").fetchone() == ("scramuser",)


# ---------------------------------------------------------------- both sides, per auth_type

@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256"])
def test_client_auth_plaintext_secret(sluice, auth_type):
    s = sluice({"auth_type": auth_type})
    with s.connect(password="apppass") as c:
        assert c.execute("select current_user").fetchone() == ("app",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5"])
def test_client_auth_md5_secret(sluice, pg, auth_type):
    ul = {"app": "apppass", "md5user": md5_secret("md5user", "md5pass"), "scramuser": "scrampass",
          "passuser": "passpass", "trustuser": "trustpass"}
    s = sluice({"auth_type": auth_type}, userlist=ul)
    with s.connect(user="md5user", db="postgres", password="md5pass") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_scram_secret_pass_through(sluice, pg, auth_type):
    ul = {"scramuser": pg.scram_secret("scramuser")}
    s = sluice({"auth_type": auth_type}, userlist=ul)
    with s.connect(user="scramuser", db="postgres", password="scrampass") as c:
        assert c.execute("select current_user").fetchone() == ("scramuser",)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256"])
def test_wrong_password(sluice, auth_type):
    s = sluice({"auth_type": auth_type})
    with pytest.raises(psycopg.OperationalError) as e:
        s.connect(password="nope")
    assert e.value.sqlstate == "28P01" or "password authentication failed" in str(e.value)


@pytest.mark.timeout(30)
def test_unknown_user_with_md5(sluice):
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
    # scramuser: the server asks it for a password (app is trusted by the test server)
    s = sluice(databases={"appdb": f"host=127.0.0.1 port={pg.port} dbname=appdb user=scramuser password=scrampass"},
               userlist={})
    with s.connect(user="whoever", password="") as c:
        assert c.execute("select current_user").fetchone() == ("scramuser",)
