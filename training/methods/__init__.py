"""One file per method: each registers its training recipe (``training.recipes``).

Importing this package imports every module in it, so a new method is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil

from training.recipes import RECIPES, Recipe

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["RECIPES", "Recipe"]
