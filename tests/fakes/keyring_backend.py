"""A hand-written in-memory keyring (the ``keyring`` backend interface), for the secrets tests."""

from __future__ import annotations


class MemoryKeyring:
    priority = 1

    def __init__(self, *, broken: bool = False) -> None:
        self.passwords: dict[tuple[str, str], str] = {}
        self.broken = broken

    def get_password(self, service: str, username: str) -> str | None:
        self._check()
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._check()
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._check()
        self.passwords.pop((service, username), None)

    def _check(self) -> None:
        if self.broken:
            raise RuntimeError("the keyring is locked")
