"""Package namespaces that import their modules on first use (PEP 562).

``import stprivacy.config`` must not build torch and every network just to read a YAML file, and a package's
``__init__`` runs whenever any of its modules is imported: so the packages name what they export and where it
lives, and import it only when it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def exports(package: str, where: dict[str, list[str]]) -> tuple[Callable[[str], object], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: ``where`` maps a module (relative to the package) to the names
    it exports."""
    home = {name: module for module, names in where.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home[name]}"), name)

    return __getattr__, sorted(home)
