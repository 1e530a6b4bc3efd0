"""One name -> object registry (timm-style `register` / `list`) for methods and datasets, with aliases."""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .errors import ClipfitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects by canonical name; an alias resolves to its canonical name before anything else looks at it."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, obj: T, aliases: Iterable[str] = ()) -> T:
        for n in (name, *aliases):
            if n in self._items or n in self._aliases:
                raise ValueError(f"{self.what} {n!r} registered twice")
        self._items[name] = obj
        self._aliases.update({a: name for a in aliases})
        return obj

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda obj: self.add(name, obj, aliases)

    def canonical(self, name: str) -> str:
        """The canonical name for `name` or one of its aliases (case-insensitive); a one-line error otherwise."""
        for n in (name, name.lower()):
            if n in self._items:
                return n
            if n in self._aliases:
                return self._aliases[n]
        raise ClipfitError(f"unknown {self.what} {name!r}; choose one of: {', '.join(sorted(self._items))}")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def list(self, pattern: str = "*") -> list[str]:
        """Canonical names matching a shell-style pattern, sorted."""
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._aliases or name.lower() in self._items \
            or name.lower() in self._aliases

    def __getitem__(self, name: str) -> T:
        return self.get(name)
