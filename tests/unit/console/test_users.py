"""Named users (reactor/console/users.py) on a real Redis: argon2id hashes under the deployment's
prefix, roles, the environment's admin, and refusals that say what is wrong."""

from __future__ import annotations

import json

import pytest

from reactor.config import Settings
from reactor.console.users import UserError, UserStore

PASSWORD = "a long enough password"


@pytest.fixture
def store(redis_conn) -> UserStore:
    return UserStore(redis_conn, Settings(key_prefix="deploy", admin_user="ops", admin_password="env admin password"))


def test_a_user_is_stored_hashed_with_argon2id_under_the_deployment_prefix(store, redis_conn):
    store.add("alice", "approver", PASSWORD)
    stored = json.loads(redis_conn.hget("deploy:users", "alice"))
    assert stored["role"] == "approver" and stored["hash"].startswith("$argon2id$") and PASSWORD not in stored["hash"]
    assert store.authenticate("alice", PASSWORD).role == "approver"
    assert store.authenticate("alice", PASSWORD + "x") is None
    assert store.authenticate("nobody", PASSWORD) is None


def test_roles_rank_viewer_approver_admin(store):
    store.add("vic", "viewer", PASSWORD)
    vic = store.get("vic")
    assert vic.may("viewer") and not vic.may("approver")
    assert store.get("ops").may("admin")  # REACTOR_ADMIN_USER stays one admin
    assert store.authenticate("ops", "env admin password").from_environment


@pytest.mark.parametrize(
    ("name", "role", "password", "says"),
    [
        ("Alice", "viewer", PASSWORD, "is not a user name"),
        ("alice", "root", PASSWORD, "is not a role"),
        ("alice", "viewer", "short", "at least 12 characters"),
        ("ops", "viewer", PASSWORD, "is REACTOR_ADMIN_USER"),
    ],
)
def test_a_bad_user_is_refused_with_a_sentence(store, name, role, password, says):
    with pytest.raises(UserError, match=says):
        store.add(name, role, password)


def test_passwd_remove_and_a_second_add(store):
    store.add("bob", "approver", PASSWORD)
    with pytest.raises(UserError, match="already exists"):
        store.add("bob", "viewer", PASSWORD)
    store.update("bob", password="another long password", role="admin")
    assert (
        store.authenticate("bob", PASSWORD) is None
        and store.authenticate("bob", "another long password").role == "admin"
    )
    store.remove("bob")
    assert store.get("bob") is None and not store.any()
    with pytest.raises(UserError, match="there is no user bob"):
        store.remove("bob")


def test_with_a_users_file_the_users_live_there_owner_only(redis_conn, tmp_path):
    path = tmp_path / "users.json"
    store = UserStore(redis_conn, Settings(users_file=str(path)))
    assert not store.any()
    store.add("alice", "approver", PASSWORD)
    store.add("bob", "viewer", PASSWORD)
    assert redis_conn.exists("reactor:users") == 0
    assert json.loads(path.read_text())["alice"]["hash"].startswith("$argon2id$")
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.authenticate("alice", PASSWORD).role == "approver"
    store.remove("bob")
    assert [u.name for u in UserStore(redis_conn, Settings(users_file=str(path))).list()] == ["alice"]
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="is not a JSON object"):
        store.get("alice")
