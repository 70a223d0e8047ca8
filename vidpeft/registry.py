"""A name -> object registry, as in mmaction2 / timm, with one-line errors for unknown names."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, resolve: Callable[[str], T | None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._resolve = resolve  # names made on demand (e.g. timm/<model>), not listed by names()

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        found = self._resolve(name) if self._resolve is not None else None
        if found is None:
            raise KeyError(
                f"unknown {self.kind} {name!r}: choose one of {', '.join(sorted(self._items))}"
            )
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)
