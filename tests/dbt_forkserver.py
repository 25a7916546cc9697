"""dbt for the test suite, forked from a process that has imported it instead of started anew:
importing dbt and its adapters is about 3.5 s of CPU, a third of a dbt run over a test's few
rows, and the suite runs dbt many times over. conftest puts `launch_dbt` in the place of
tenantpulse.transform.dbt_cli.launch_dbt.

The process is multiprocessing's forkserver (one per pytest-xdist worker, started on first use):
it imports dbt once and runs nothing else, so each dbt is a fresh process as the product starts
one, with the same arguments, folder and environment, and its exit code; only the import is
shared. Its output goes through files, returned as the product's `capture` asks, or else written
to this process's own stdout and stderr."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRELOAD = ["dbt.cli.main", "dbt.adapters.duckdb", "dbt.adapters.postgres", __name__]
_context = None


def _dbt(argv: list[str], cwd: str, env: dict[str, str], stdout: str, stderr: str) -> None:
    """In the forked process: what `subprocess.run(argv, cwd=cwd, env=env)` would run."""
    for fd, path in ((1, stdout), (2, stderr)):
        os.dup2(os.open(path, os.O_WRONLY), fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["dbt", *argv[1:]]
    from dbt.cli.main import cli

    cli()  # exits with dbt's exit code, which becomes the process's


def launch_dbt(
    argv: list[str], cwd: Path, env: dict[str, str], capture: bool
) -> subprocess.CompletedProcess:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    with tempfile.TemporaryDirectory(prefix="dbt-output-") as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        out.touch()
        err.touch()
        process = _context.Process(target=_dbt, args=(argv, str(cwd), env, str(out), str(err)))
        process.start()
        process.join()
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    if capture:
        return subprocess.CompletedProcess(argv, process.exitcode, stdout, stderr)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return subprocess.CompletedProcess(argv, process.exitcode)
