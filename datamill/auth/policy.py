"""The policies routes declare: who may call them."""

from __future__ import annotations

from dataclasses import dataclass

from datamill.protocol.access import Role


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may call a route: anyone (``public``), or a key of at least ``role``."""

    role: Role | None

    @property
    def public(self) -> bool:
        return self.role is None

    def __str__(self) -> str:
        return "public" if self.role is None else f"{self.role.value} or above"


PUBLIC = Policy(None)
