"""Installs the test resolver that rebinds (tests/support/rebinding.py) in a process started with it.

A test puts this directory on ``PYTHONPATH`` (see :func:`tests.support.rebinding.process_env`);
Python imports ``sitecustomize`` at start-up, before any of Syndicate's code. The module is loaded
from its file, so the process's ``sys.path`` stays as it would be.
"""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_syndicate_rebinding", Path(__file__).resolve().parent.parent / "rebinding.py"
)
if _spec is not None and _spec.loader is not None:
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _module  # dataclasses look their module up there
    _spec.loader.exec_module(_module)
    _module.install_from_env()
