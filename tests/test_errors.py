"""worker.errors: every exception class of the worker is defined there and drawn in its tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import worker
from worker import errors

# Defined elsewhere on purpose (drawn in errors.py as roots of their own layer: config and feeds
# import nothing from worker), and the CLI's three until they move into errors.py.
ELSEWHERE = {
    "config.model.ConfigError",
    "config.settings.SettingsError",
    "feeds.websub.WebSubError",
}


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(worker.__path__, "worker."):
        if ".migrations" in info.name or info.name.endswith(".__main__"):
            continue  # alembic scripts run only inside alembic; ``__main__`` runs its command
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


def test_every_worker_exception_is_defined_in_errors() -> None:
    outside = {
        f"{c.__module__}.{c.__qualname__}" for c in _exception_classes() if c.__module__ != errors.__name__
    }
    assert outside <= ELSEWHERE, sorted(outside - ELSEWHERE)


def test_every_class_of_errors_is_drawn_in_its_tree() -> None:
    drawn = set(re.findall(r"\b[A-Z][A-Za-z]+\b", errors.__doc__ or ""))
    classes = {
        c.__name__ for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, BaseException)
    }
    assert classes - drawn == set()
    for name in ELSEWHERE:
        if name.startswith(("config.", "feeds.")):
            assert name in (errors.__doc__ or "")
