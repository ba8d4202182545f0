"""The CI matrix. `.ci/run` runs every session; `nox -l` lists them, `nox -s lint` runs one.

Interpreters come from pyenv when it is there (``pyenv prefix 3.13``), Python 3.14 from
scripts/python314.sh's folder (no pyenv or Debian 12 build of it here), else from PATH;
environments are made with uv when it is installed (much faster), else virtualenv.
Sessions that need services (``full``) expect PostgreSQL on 127.0.0.1:5432 and Redis on
127.0.0.1:6379, as `.ci/run` starts them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

# The supported matrix: each Django series and the Python versions it is tested on.
# pyproject.toml's classifiers name exactly these (tests/test_packaging.py compares them).
MATRIX: dict[str, tuple[str, ...]] = {
    "5.2": ("3.10", "3.11", "3.12", "3.13", "3.14"),
    "6.0": ("3.12", "3.13", "3.14"),
    "6.1": ("3.12", "3.13", "3.14"),
}
NEWEST_DJANGO = "6.1"
NEWEST_PYTHON = "3.13"
# The oldest pair: pyproject.toml's floors are its versions (tests/test_packaging.py).
OLDEST = ("5.2", "3.10")

# The newest pair runs in `full` (PostgreSQL, Redis, Celery, load, Chromium); every other
# pair of the matrix runs on SQLite.
SQLITE_PAIRS = [
    (django, python)
    for django, pythons in MATRIX.items()
    for python in pythons
    if (django, python) != (NEWEST_DJANGO, NEWEST_PYTHON)
]
ALL_PYTHONS = sorted({python for pythons in MATRIX.values() for python in pythons})


# Where scripts/python314.sh puts CPython 3.14 (.ci/run runs it before nox).
PYTHON314_BIN = Path(os.environ.get("PYTHON314_PREFIX", "/opt/python3.14-sid")) / "usr" / "bin"


def _use_pyenv_interpreters() -> None:
    """Put pyenv's interpreters on PATH, so `python3.10` is found without `pyenv global`,
    and scripts/python314.sh's `python3.14`."""
    if PYTHON314_BIN.is_dir():
        os.environ["PATH"] = os.pathsep.join([str(PYTHON314_BIN), os.environ.get("PATH", "")])
    if not shutil.which("pyenv"):
        return
    prefixes = []
    for version in (v for v in ALL_PYTHONS if v != "3.14"):
        done = subprocess.run(
            ["pyenv", "prefix", version], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            prefixes.append(str(Path(done.stdout.strip()) / "bin"))
    os.environ["PATH"] = os.pathsep.join([*prefixes, os.environ.get("PATH", "")])


_use_pyenv_interpreters()
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")  # pyenv's interpreters, or fail


def group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


def django_spec(series: str) -> str:
    return f"Django=={series}.*"


def install(session: nox.Session, django: str, *groups: str) -> None:
    requirements = [req for name in groups for req in group(name)]
    session.install("-e", ".[celery,testing]", django_spec(django), *requirements)


def versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "import sys, django; "
        "print('== Python', sys.version.split()[0], '/ Django', django.get_version())",
    )


@nox.session
@nox.parametrize(
    "python,django",
    [nox.param(python, django, id=f"django{django}-py{python}") for django, python in SQLITE_PAIRS],
)
def tests(session: nox.Session, django: str) -> None:
    """The suite on SQLite (no PostgreSQL-only tests, no browser)."""
    install(session, django, "test")
    versions(session)
    # A tenth of the fuzz examples: they exercise our parsing, the same on every pair
    # (tests/test_fuzz.py); `full` runs them all.
    env = {"TOPVIEW_FUZZ_SCALE": "0.1"}
    session.run("python", "-m", "pytest", "-q", "-m", "not browser", *session.posargs, env=env)


@nox.session(python=NEWEST_PYTHON)
def full(session: nox.Session) -> None:
    """Everything, on PostgreSQL: concurrency, the Celery worker on Redis, load, Chromium."""
    install(session, NEWEST_DJANGO, "test", "browser")
    versions(session)
    env = {
        "TOPVIEW_TEST_DATABASE": "postgres",
        "TOPVIEW_REQUIRE_SERVICES": "1",
        # Its own database, so a contributor's `make test` on the same server is not disturbed.
        "TOPVIEW_TEST_PG_NAME": os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_nox"),
    }
    session.run("python", "-m", "pytest", "-q", *session.posargs, env=env)


@nox.session(python=NEWEST_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, ruff format, mypy --strict and the import contracts."""
    install(session, NEWEST_DJANGO, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "--strict", "topview_callbacks")
    session.run("lint-imports")


@nox.session(python=NEWEST_PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site, with every warning an error."""
    session.install(*group("docs"))
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(ROOT / "build" / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(python=NEWEST_PYTHON)
def package(session: nox.Session) -> None:
    """Build, twine check, install the wheel into a new site (scripts/check_package.py)."""
    session.install(*group("package"))
    dist = ROOT / "build" / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist))
    session.run("twine", "check", "--strict", *map(str, sorted(dist.iterdir())))
    session.run(
        "python",
        "scripts/check_package.py",
        "--dist",
        str(dist),
        "--python",
        session.python if isinstance(session.python, str) else NEWEST_PYTHON,
        "--django",
        django_spec(NEWEST_DJANGO),
    )
    # The README followed verbatim: its install line in a new virtualenv, its example
    # pasted into a new startproject site, `check` with no variable set, the contract's
    # example notice at NOTICE_URL with and without its slash.
    session.run("python", "scripts/check_readme_site.py")


@nox.session(python=NEWEST_PYTHON)
def contract(session: nox.Session) -> None:
    """The OpenAPI contract: valid, and schemathesis finds nothing against a live server."""
    install(session, NEWEST_DJANGO, "contract")
    session.run("openapi-spec-validator", "topview_callbacks/openapi.yaml")
    session.run("python", "scripts/check_contract.py", *session.posargs)


# The tests of the pipeline's guarantees, again with notices partitioned by month
# (PARTITION_NOTICES): storing, exactly once under concurrency, the inline function, the
# statements' costs, pruning, and the partitions' own. Not the whole suite: CI's time.
PARTITIONED_TESTS = (
    "tests/test_partitions.py",
    "tests/test_processing.py",
    "tests/test_concurrency.py",
    "tests/test_functions.py",
    "tests/test_costs.py",
    "tests/test_pruning.py",
    "tests/test_rollups.py",
    "tests/test_claims.py",
    "tests/test_dispatch.py",
    "tests/test_commands.py::test_reprocess_by_uuid_and_failed_really_reruns_receivers",
    "tests/test_commands.py::test_reprocess_needs_uuids_or_failed_and_names_unknown_ones",
)


@nox.session(python=NEWEST_PYTHON)
def partitioned(session: nox.Session) -> None:
    """The pipeline's guarantees on PostgreSQL with notices partitioned by month."""
    install(session, NEWEST_DJANGO, "test")
    versions(session)
    env = {
        "TOPVIEW_TEST_DATABASE": "postgres",
        "TOPVIEW_REQUIRE_SERVICES": "1",
        "TOPVIEW_TEST_PARTITION_NOTICES": "1",
        "TOPVIEW_TEST_PG_NAME": os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_partitioned"),
    }
    args = session.posargs or PARTITIONED_TESTS
    session.run("python", "-m", "pytest", "-q", *args, env=env)


# The PostgreSQL tests that go through PgBouncer: the endpoint, processing, concurrency,
# transactions, the inline function, reconnecting. Not the whole suite: CI's time is spent.
PGBOUNCER_TESTS = (
    "tests/test_views.py",
    "tests/test_processing.py",
    "tests/test_concurrency.py",
    "tests/test_transactions.py",
    "tests/test_functions.py",
    "tests/test_reconnecting.py",
    "tests/test_claims.py",
    "tests/test_dispatch.py",
)


# On the oldest pair: `full` runs PostgreSQL on the newest, and the inline path's Python
# differs between them (Python 3.10's datetime.fromisoformat refuses what 3.11 takes).
@nox.session(python=OLDEST[1])
def pgbouncer(session: nox.Session) -> None:
    """PostgreSQL tests through Debian's PgBouncer in transaction pooling (a port of its own),
    on the oldest supported Python and Django."""
    if not shutil.which("pgbouncer"):
        session.error("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    install(session, OLDEST[0], "test")
    versions(session)
    name = os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_pgbouncer")
    drop = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c"]
    # Django would drop its test database through PgBouncer, which still holds connections
    # to it: the database is kept (--reuse-db) and dropped here, directly.
    session.run(*drop, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', external=True)
    with _pgbouncer(session) as port:
        env = {
            "TOPVIEW_TEST_DATABASE": "postgres",
            "TOPVIEW_REQUIRE_SERVICES": "1",
            "TOPVIEW_TEST_PG_NAME": name,
            "PGPORT": str(port),
            "TOPVIEW_TEST_PGBOUNCER": "1",
            "TOPVIEW_TEST_PG_DIRECT_PORT": "5432",
        }
        args = session.posargs or PGBOUNCER_TESTS
        session.run("python", "-m", "pytest", "-q", "--reuse-db", *args, env=env)
    session.run(*drop, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', external=True)


@nox.session(python=NEWEST_PYTHON)
def production(session: nox.Session) -> None:
    """nginx, two gunicorn nodes, PgBouncer and Celery on RabbitMQ, killed under load
    (tests/test_production_shape.py)."""
    for tool in ("nginx", "pgbouncer"):
        if not shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin"):
            session.error(f"{tool} is not installed (.ci/run installs it)")
    install(session, NEWEST_DJANGO, "test")
    env = {
        "TOPVIEW_TEST_DATABASE": "postgres",
        "TOPVIEW_REQUIRE_SERVICES": "1",
        "TOPVIEW_TEST_PRODUCTION": "1",
        "TOPVIEW_TEST_PG_NAME": os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_production"),
        "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin",
    }
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        *(session.posargs or ["tests/test_production_shape.py"]),
        env=env,
    )


# READ_DATABASE's tests, with "replica" a real streaming replica of "default".
REPLICA_TESTS = ("tests/test_read_database.py", "tests/test_streaming_replica.py")


@nox.session(python=NEWEST_PYTHON)
def replica(session: nox.Session) -> None:
    """READ_DATABASE against a real streaming replica: a private primary (initdb) and a hot
    standby of it (pg_basebackup -R) on two free ports (scripts/streaming_replica.sh)."""
    install(session, NEWEST_DJANGO, "test")
    port = _free_port_pair()
    script = str(ROOT / "scripts" / "streaming_replica.sh")
    session.run("bash", script, "start", str(port), external=True)
    try:
        env = {
            "TOPVIEW_TEST_DATABASE": "postgres",
            "TOPVIEW_REQUIRE_SERVICES": "1",
            "PGPORT": str(port),
            "TOPVIEW_TEST_REPLICA_PORT": str(port + 1),
        }
        session.run("python", "-m", "pytest", "-q", *(session.posargs or REPLICA_TESTS), env=env)
    finally:
        session.run("bash", script, "stop", str(port), external=True)


def _free_port_pair() -> int:
    """A free port whose next one is free too (TOPVIEW_REPLICA_PAIR_PORT picks it)."""
    if chosen := os.environ.get("TOPVIEW_REPLICA_PAIR_PORT"):
        return int(chosen)
    for _ in range(100):
        with socket.socket() as probe, socket.socket() as following:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            try:
                following.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@contextlib.contextmanager
def _pgbouncer(session: nox.Session) -> Iterator[int]:
    """PgBouncer on a free port, transaction pooling, trusting 127.0.0.1:5432's users."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    folder = ROOT / "build" / "pgbouncer"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "userlist.txt").write_text('"postgres" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        "* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'userlist.txt'}\n"
        "admin_users = postgres\n"
        "pool_mode = transaction\n"
        # Few server connections: the machine's PostgreSQL serves other runs too.
        "default_pool_size = 10\nmax_client_conn = 500\n"
        # A test that breaks a server connection must not leave the next ones waiting.
        "server_login_retry = 1\nquery_wait_timeout = 30\n"
        "log_connections = 0\nlog_disconnections = 0\nlog_stats = 0\n"
    )
    command = ["pgbouncer", *(["-u", "postgres"] if os.geteuid() == 0 else []), str(config)]
    session.log(f"PgBouncer on 127.0.0.1:{port} ({config})")
    process = subprocess.Popen(command)
    try:
        for _ in range(50):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        else:
            session.error(f"PgBouncer did not start on port {port}")
        yield port
    finally:
        process.terminate()
        process.wait(10)
