"""Named users with roles, for the dashboard's login and for the CLI actions a person answers for.

Stored in Redis under the deployment's key prefix (`{prefix}:users`, a hash: name → JSON
`{"role": "approver", "hash": "$argon2id$...", "created": "2026-01-15T10:00:00+00:00"}`), or, with
REACTOR_USERS_FILE, in that file (a JSON object of the same entries, written whole and atomically,
mode 0600); passwords hashed with argon2id (argon2-cffi's defaults). REACTOR_ADMIN_USER /
REACTOR_ADMIN_PASSWORD stay one more user, an admin, that lives in the environment only.

Roles, each with what the one before it may do:
- `viewer`: reads the dashboard;
- `approver`: approves and declines write-offs in the approvals queue, releases held ones, undoes
  write-offs, replays events and dead letters;
- `admin`: also manages users.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..config import Settings
from ..jobs.audit import AuditLog, AuditRecord, Outcome
from ..keys import Keys

ROLES = ("viewer", "approver", "admin")
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A user name: lower case letters, digits, '.', '_', '-'; shown in the audit trail as is."""
MIN_PASSWORD = 12

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
_DUMMY_HASH = _hasher.hash("a password nobody has")  # verified for unknown users: no timing hint


class UserError(Exception):
    """A refusal of a user command; the message is the sentence to show."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created: str | None = None
    from_environment: bool = False

    def may(self, role: str) -> bool:
        """Whether this user holds `role` or one above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a user name: 1 to 64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"{role!r} is not a role; use one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


class _RedisEntries:
    """The entries in the hash `{prefix}:users`."""

    def __init__(self, connection: redis.Redis, key: str) -> None:
        self.connection, self.key = connection, key

    def get(self, name: str) -> bytes | None:
        return self.connection.hget(self.key, name)

    def names(self) -> list[str]:
        return sorted(n.decode() for n in self.connection.hkeys(self.key))

    def put(self, name: str, value: str, *, new: bool = False) -> bool:
        if new:
            return bool(self.connection.hsetnx(self.key, name, value))
        self.connection.hset(self.key, name, value)
        return True

    def delete(self, name: str) -> bool:
        return bool(self.connection.hdel(self.key, name))


class _FileEntries:
    """The entries in REACTOR_USERS_FILE: read at each use, written whole through a temporary file
    and a rename (a reader never sees half a file), owner-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the users file {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise UserError(f"the users file {self.path} is not a JSON object")
        return {k: json.dumps(v) for k, v in data.items() if isinstance(k, str)}

    def _write(self, entries: dict[str, str]) -> None:
        data = {k: json.loads(v) for k, v in sorted(entries.items())}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes | None:
        value = self._all().get(name)
        return value.encode() if value is not None else None

    def names(self) -> list[str]:
        return sorted(self._all())

    def put(self, name: str, value: str, *, new: bool = False) -> bool:
        entries = self._all()
        if new and name in entries:
            return False
        entries[name] = value
        self._write(entries)
        return True

    def delete(self, name: str) -> bool:
        entries = self._all()
        if entries.pop(name, None) is None:
            return False
        self._write(entries)
        return True


class UserStore:
    """The named users of a deployment, in Redis or REACTOR_USERS_FILE. Takes the deployment's
    settings: users and their sessions are shared by every site the deployment serves."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        self.entries: _RedisEntries | _FileEntries = (
            _FileEntries(Path(settings.users_file))
            if settings.users_file
            else _RedisEntries(connection, Keys(settings.deployment_key_prefix).users())
        )

    def _load(self, name: str) -> dict[str, str] | None:
        raw = self.entries.get(name)
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def get(self, name: str) -> User | None:
        """The user called `name`: the environment's admin, or a stored user with a known role."""
        if self._is_env_admin(name):
            return User(name, "admin", from_environment=True)
        data = self._load(name)
        if data is None or data.get("role") not in ROLES:
            return None
        return User(name, data["role"], data.get("created"))

    def _is_env_admin(self, name: str) -> bool:
        admin = self.settings.admin_user
        return bool(admin and self.settings.admin_password) and hmac.compare_digest(name.encode(), admin.encode())

    def list(self) -> list[User]:
        users = []
        for name in self.entries.names():
            user = self.get(name)
            if user is not None:
                users.append(user)
        return users

    def any(self) -> bool:
        """Whether any named user is stored (the environment's admin aside)."""
        return bool(self.entries.names())

    def add(self, name: str, role: str, password: str) -> User:
        check_name(name), check_role(role), check_password(password)
        if self._is_env_admin(name):
            raise UserError(f"{name} is REACTOR_ADMIN_USER, the admin from the environment; choose another name")
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        data = {"role": role, "hash": _hasher.hash(password), "created": created}
        if not self.entries.put(name, json.dumps(data), new=True):
            raise UserError(f"user {name} already exists; `reactor users passwd {name}` changes the password")
        return User(name, role, created)

    def remove(self, name: str) -> None:
        if not self.entries.delete(name):
            raise UserError(f"there is no user {name}")

    def update(self, name: str, *, password: str | None = None, role: str | None = None) -> User:
        data = self._load(name)
        if data is None:
            raise UserError(f"there is no user {name}")
        if password is not None:
            data["hash"] = _hasher.hash(check_password(password))
        if role is not None:
            data["role"] = check_role(role)
        self.entries.put(name, json.dumps(data))
        return User(name, data["role"], data.get("created"))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (unknown users take as long as known ones)."""
        if self._is_env_admin(name):
            if hmac.compare_digest(password.encode(), self.settings.admin_password.encode()):
                return User(name, "admin", from_environment=True)
            return None
        data = self._load(name) if NAME.fullmatch(name) else None
        stored = data.get("hash") if data else None
        try:
            _hasher.verify(stored if isinstance(stored, str) else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if data is None or data.get("role") not in ROLES:
            return None
        if isinstance(stored, str) and _hasher.check_needs_rehash(stored):
            data["hash"] = _hasher.hash(password)
            self.entries.put(name, json.dumps(data))
        return User(name, data["role"], data.get("created"))


def record_user_change(connection: redis.Redis, settings: Settings, actor: str, name: str, change: str) -> str:
    """Append a `user_changed` record to the deployment's audit trail (the home site's stream): who
    (`actor`) changed which user (`name`) and how (`change`: never a password or its hash)."""
    record = AuditRecord(
        event_id=None,
        invoice_id=None,
        outcome=Outcome.USER_CHANGED,
        reason=f"by {actor}: {change}",
        detail=f"user {name}",
    )
    return AuditLog(connection, Keys(settings.deployment_key_prefix).audit()).append(record)
