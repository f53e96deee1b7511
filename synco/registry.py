"""Registries by name: methods, losses, data sets and backbones.

A registry maps a name to a builder plus what the rest of the library needs to know about it (a
method's structured config class, a data set's traits). The configuration's allowed values, the
command line's choices and the tests read them from here, so adding a method, a loss, a data set or a
backbone is one file with one ``@REGISTRY.register("name")`` line, and no edit elsewhere.

Example::

    from synco.registry import METHODS
    METHODS.names()          # ['mochi', 'moco_v2', 'simclr', 'synco']
    METHODS.get("simclr")    # the registered entry
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries, filled by ``@registry.register(name)`` at import time.

    Args:
        kind: what the entries are ("method", "backbone", ...), used in error messages.
        modules: modules whose import fills the registry; imported on first look-up, so that a
            registry is complete however the library was entered, without import cycles.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules
        self._entries: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import importlib

        for module in self._modules:
            importlib.import_module(module)

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register ``entry`` under ``name``; without ``entry``, a decorator that does so.

        Raises:
            ValueError: ``name`` is already registered (two entries would silently shadow each other).
        """

        def add(value: T) -> T:
            if name in self._entries and self._entries[name] is not value:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plug-in unloaded, a method a test registered for its own duration)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry named ``name``.

        Raises:
            KeyError: an unknown name; the message lists the known ones.
        """
        self._load()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)  # registration order: the order people read the choices in

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, Any]]:
        self._load()
        return list(self._entries.items())


#: Self-supervised and supervised methods (``synco.methods``): name -> :class:`synco.methods.base.MethodSpec`.
METHODS: Registry = Registry("method", ("synco.methods.moco", "synco.methods.simclr", "synco.methods.hcl",
                                          "synco.methods.supcon", "synco.methods.hscl", "synco.methods.byol",
                                          "synco.methods.simsiam", "synco.methods.barlow_twins", "synco.methods.vicreg",
                                          "synco.methods.swav"))
#: Continual regularisers (``continual.regularizer``): name -> :class:`synco.continual.regularizers.Regularizer`.
REGULARIZERS: Registry = Registry("continual regulariser", ("synco.continual.regularizers",))
#: Loss modules (``synco.losses``): name -> nn.Module class.
LOSSES: Registry = Registry("loss", ("synco.losses",))
#: Data sets (``synco.data.datasets``): name -> :class:`synco.data.datasets.DatasetSpec`.
DATASETS: Registry = Registry("dataset", ("synco.data.datasets",))
#: Backbones (``synco.models.backbones``): name -> builder ``(in_channels, small_stem) -> nn.Module``.
BACKBONES: Registry = Registry("backbone", ("synco.models.backbones",))
