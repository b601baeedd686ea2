"""Redaction: the secrets a process knows never leave it as text.

`redact(text)` replaces every secret this process was configured with (reactor/config.py
`Settings.secrets`), and the password of any URL or `?...password=...` query, by `[redacted]`. It
is applied where text leaves the process, not at each call that makes the text: the chokepoints are
listed in docs/security.md, "Redaction".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4
"""Shortest value redacted. Shorter values are not secrets anyone could keep (a 3-character password
falls to guessing), and replacing one would garble every line that holds those letters."""

_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)"  # scheme://user:
    r"(?P<password>[^\s/?#]+)"  # up to the last @ of the authority: an unencoded @ stays inside
    r"(?=@)"
)
"""The password of a URL's user information: `redis://:pw@host`, `https://user:pw@host`."""
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&][A-Za-z_]*(?:password|passwd|token|secret)=)(?P<value>[^&\s#]+)", re.I)
"""A password in a URL's query: `?sentinel_password=...`, `&password=...`."""


class Redactor:
    """Replaces a set of secrets, and URL credentials, in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact `secrets` too, and their URL-encoded forms (a password inside a URL)."""
        wanted = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                wanted.update((secret, quote(secret, safe="")))
        with self._lock:
            if wanted <= set(self._secrets):
                return
            # Longest first: a secret that contains another is replaced whole.
            ordered = tuple(sorted(wanted.union(self._secrets), key=len, reverse=True))
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            self._secrets = ordered

    def __call__(self, text: str) -> str:
        """`text` with every secret and URL password replaced by REDACTED."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(r"\g<head>" + REDACTED, text)
        if "=" in text:
            text = _QUERY_PASSWORD.sub(r"\g<head>" + REDACTED, text)
        return text


# The secrets belong to the process, as its logging does, so they are kept once per process here:
# logging starts before any `Settings` exist. Each process adds what its environment holds at its
# edge (the `reactor` command, gunicorn's config, the Redis probe) and what the `Settings` it runs
# with hold (`create_app`, `build_context`), with `remember`.
_process = Redactor()


def remember(secrets: Iterable[str]) -> None:
    """Redact `secrets` in everything this process sends out from now on."""
    _process.add(secrets)


def redact(text: str) -> str:
    """`text` without any secret this process knows, nor a URL password."""
    return _process(text)
