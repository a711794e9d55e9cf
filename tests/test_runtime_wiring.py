"""worker.runtime is wiring only: it builds the process's shared objects without loading any stage,
and worker.metrics learns the configured hosts without importing (or building) a runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(code: str, tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SYNDICATE_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_runtime_builds_pacing_leases_and_endpoints_without_loading_the_outbox(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from config.model import parse_config\n"
        "from config.settings import Settings\n"
        "from worker.runtime import Runtime\n"
        "config = parse_config({'endpoints': [{'name': 'archive', 'kind': 'file', 'path': 's.jsonl'}]})\n"
        f"settings = Settings(database_url='sqlite:///{tmp_path}/db.sqlite', var_dir={str(tmp_path)!r})\n"
        f"rt = Runtime(settings=settings, config=config, base_dir={str(tmp_path)!r})\n"
        "print(type(rt.pacer).__name__, type(rt.sending_leases).__name__, rt.endpoint('archive').name)\n"
        "stages = ('worker.outbox', 'worker.crawl', 'worker.process', 'worker.render', 'worker.ops')\n"
        "print(sorted(m for m in stages if m in sys.modules))\n"
    )
    assert _run(code, tmp_path) == ["Pacer SendingLeases archive", "[]"]


def test_metrics_label_hosts_by_the_installed_runtime_without_importing_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from worker import metrics\n"
        "print(metrics.host_label('https://valley.example/news/1'), 'worker.runtime' in sys.modules)\n"
        "from config.model import parse_config\n"
        "from config.settings import Settings\n"
        "from worker.runtime import Runtime, set_runtime\n"
        "source = {'name': 'valley', 'kind': 'listing', 'url': 'https://valley.example/news/'}\n"
        f"settings = Settings(database_url='sqlite:///{tmp_path}/db.sqlite', var_dir={str(tmp_path)!r})\n"
        "set_runtime(Runtime(settings=settings, config=parse_config({'sources': [source]})))\n"
        "print(metrics.host_label('https://valley.example/news/1'), metrics.host_label('https://x.example/'))\n"
    )
    assert _run(code, tmp_path) == ["other False", "valley.example other"]
