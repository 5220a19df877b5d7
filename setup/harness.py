"""Helpers for setup/start.sh, setup/test.sh and setup/build_wheels.sh.

Small sub-commands that are easier to get right in Python than in bash. Only the
standard library, plus psycopg2 (an Odoo dependency) for the database commands.
Every failure prints ONE line starting with ``ERROR:`` on stderr and exits non-zero.

    python3 setup/harness.py check-odoo            # Odoo 18.0 importable? prints its root
    python3 setup/harness.py odoo-bin              # path of odoo-bin (or $ODOO_BIN)
    python3 setup/harness.py addons-path           # Odoo's addons dirs + the repo root
    python3 setup/harness.py odoo-env              # the three above as shell assignments
    python3 setup/harness.py addons                # installable addons of this repo, comma-joined
    python3 setup/harness.py constraints FILE      # write pip constraints that hold Odoo's pins
    python3 setup/harness.py deps-satisfied REQ    # exit 0 when every pin of REQ is installed
    python3 setup/harness.py check-pg              # PostgreSQL reachable?
    python3 setup/harness.py db-exists DB
    python3 setup/harness.py drop-db DB
    python3 setup/harness.py write-config FILE DB DATA_DIR [HTTP_PORT]
    python3 setup/harness.py check-installed DB ADDONS
    python3 setup/harness.py check-test-imports    # tests/__init__.py imports every test_*.py
    python3 setup/harness.py free-port
"""

import ast
import getpass
import importlib.metadata
import os
import re
import socket
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ODOO_SERIES = (18, 0)


def die(message):
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


def odoo_root():
    """Directory that holds the ``odoo`` package (and odoo-bin, addons/ in a source tree)."""
    try:
        import odoo  # noqa: PLC0415 - only importable where Odoo is installed
        from odoo import release  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001 - any import failure means "no usable Odoo"
        die(
            f"Odoo {ODOO_SERIES[0]}.{ODOO_SERIES[1]} is not importable by {sys.executable} "
            f"(import odoo failed: {exc.__class__.__name__}: {exc}) "
            f"- install Odoo {ODOO_SERIES[0]}.0 first"
        )
    if tuple(release.version_info[:2]) != ODOO_SERIES:
        die(
            f"Odoo {release.version} is installed for {sys.executable}, "
            f"but this project needs Odoo {ODOO_SERIES[0]}.{ODOO_SERIES[1]}"
        )
    return Path(odoo.__file__).resolve().parent.parent


def cmd_check_odoo(_args):
    print(odoo_root())


def cmd_odoo_bin(_args):
    explicit = os.environ.get("ODOO_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK) and not Path(explicit).is_file():
            die(f"ODOO_BIN={explicit} does not exist")
        print(explicit)
        return
    candidate = odoo_root() / "odoo-bin"
    if candidate.is_file():
        print(candidate)
        return
    # Odoo installed as a package (no source tree): its console script.
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        script = Path(directory) / "odoo"
        if script.is_file() and os.access(script, os.X_OK):
            print(script)
            return
    die("odoo-bin not found: set ODOO_BIN to the path of Odoo 18.0's odoo-bin")


def addons_path():
    explicit = os.environ.get("ODOO_ADDONS_PATH")
    if explicit:
        paths = [p.strip() for p in explicit.split(",") if p.strip()]
    else:
        root = odoo_root()
        paths = [str(p) for p in (root / "odoo" / "addons", root / "addons") if p.is_dir()]
    if str(REPO_ROOT) not in paths:
        paths.append(str(REPO_ROOT))
    return paths


def cmd_addons_path(_args):
    print(",".join(addons_path()))


def cmd_odoo_env(_args):
    """Shell assignments for ODOO_ROOT, ODOO_BIN and FLEX_ADDONS_PATH (one Odoo import)."""
    import shlex  # noqa: PLC0415
    from contextlib import redirect_stdout  # noqa: PLC0415
    from io import StringIO  # noqa: PLC0415

    root = odoo_root()
    with redirect_stdout(StringIO()) as out:
        cmd_odoo_bin([])
    print(f"ODOO_ROOT={shlex.quote(str(root))}")
    print(f"ODOO_BIN={shlex.quote(out.getvalue().strip())}")
    print(f"FLEX_ADDONS_PATH={shlex.quote(','.join(addons_path()))}")


def repo_addons():
    """Directories at the repo root with an installable ``__manifest__.py``, sorted."""
    addons = []
    for manifest in sorted(REPO_ROOT.glob("*/__manifest__.py")):
        try:
            values = ast.literal_eval(manifest.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError) as exc:
            die(f"{manifest.relative_to(REPO_ROOT)} is not a valid manifest: {exc}")
        if values.get("installable", True):
            addons.append(manifest.parent.name)
    return addons


def cmd_addons(_args):
    addons = repo_addons()
    if not addons:
        die(f"no installable addon (directory with __manifest__.py) in {REPO_ROOT}")
    print(",".join(addons))


def cmd_constraints(args):
    """Constraints that keep every version Odoo pinned: Odoo's requirements.txt when it
    is a source install, else the installed versions of what the ``odoo`` dist requires."""
    (target,) = args
    requirements = odoo_root() / "requirements.txt"
    if requirements.is_file():
        text = requirements.read_text(encoding="utf-8")
    else:
        lines = []
        for requirement in importlib.metadata.requires("odoo") or []:
            name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
            try:
                lines.append(f"{name}=={importlib.metadata.version(name)}")
            except importlib.metadata.PackageNotFoundError:
                continue
        text = "\n".join(lines) + "\n"
    Path(target).write_text(text, encoding="utf-8")


def cmd_deps_satisfied(args):
    """Exit 0 when every ``name==version`` line of the requirements file is installed
    (so the scripts can skip a slow ``pip install`` that would change nothing)."""
    (requirements,) = args
    for line in Path(requirements).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if not match:
            sys.exit(1)  # not a plain pin: let pip decide
        name, version = match.groups()
        try:
            if importlib.metadata.version(name) != version:
                sys.exit(1)
        except importlib.metadata.PackageNotFoundError:
            sys.exit(1)


def pg_params():
    params = {
        "host": os.environ.get("PGHOST") or None,
        "port": os.environ.get("PGPORT") or None,
        "user": os.environ.get("PGUSER") or None,
        "password": os.environ.get("PGPASSWORD") or None,
    }
    return {key: value for key, value in params.items() if value}


def pg_where():
    params = pg_params()
    host = params.get("host", "the local socket (PGHOST unset)")
    port = params.get("port", "5432")
    user = params.get("user") or getpass.getuser()
    return f"{host} port {port} as {user}"


def pg_connect(dbname="postgres"):
    try:
        import psycopg2  # noqa: PLC0415 - Odoo's dependency, present wherever Odoo is
    except ImportError:
        die("psycopg2 is not importable (it comes with Odoo's requirements)")
    try:
        connection = psycopg2.connect(dbname=dbname, connect_timeout=5, **pg_params())
    except psycopg2.OperationalError as exc:
        reason = " ".join(str(exc).split())
        die(f"PostgreSQL is not reachable at {pg_where()} ({reason})")
    connection.autocommit = True
    return connection


def cmd_check_pg(_args):
    connection = pg_connect()
    with connection.cursor() as cr:
        cr.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cr.fetchone()
    connection.close()
    if not row or not row[0]:
        die(f"the PostgreSQL role used at {pg_where()} cannot create databases")


def cmd_db_exists(args):
    (dbname,) = args
    connection = pg_connect()
    with connection.cursor() as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        found = cr.fetchone()
    connection.close()
    sys.exit(0 if found else 1)


def cmd_drop_db(args):
    (dbname,) = args
    from psycopg2 import sql  # noqa: PLC0415

    connection = pg_connect()
    with connection.cursor() as cr:
        cr.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
    connection.close()


def cmd_write_config(args):
    target, dbname, data_dir, *rest = args
    http_port = rest[0] if rest else "8069"
    params = pg_params()
    lines = [
        "[options]",
        f"addons_path = {','.join(addons_path())}",
        f"data_dir = {data_dir}",
        f"db_name = {dbname}",
        f"dbfilter = ^{re.escape(dbname)}$",
        f"db_host = {params.get('host', 'False')}",
        f"db_port = {params.get('port', 'False')}",
        f"db_user = {params.get('user', 'False')}",
        f"db_password = {params.get('password', 'False')}",
        "list_db = False",
        "http_interface = 127.0.0.1",
        f"http_port = {http_port}",
        "workers = 0",
        "log_level = warn",
    ]
    if os.environ.get("FLEX_CONFIG_EXTRA"):
        lines.extend(os.environ["FLEX_CONFIG_EXTRA"].split(";"))
    Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


def cmd_check_installed(args):
    """After ``odoo-bin -i``: every addon must be in state 'installed'."""
    dbname, addons = args
    wanted = [name for name in addons.split(",") if name]
    connection = pg_connect(dbname)
    with connection.cursor() as cr:
        cr.execute("SELECT name, state FROM ir_module_module WHERE name = ANY(%s)", (wanted,))
        states = dict(cr.fetchall())
        cr.execute("SELECT count(*) FROM ir_module_module WHERE state = 'installed' AND demo")
        (with_demo,) = cr.fetchone()
    connection.close()
    missing = [
        f"{name} ({states.get(name, 'unknown')})"
        for name in wanted
        if states.get(name) != "installed"
    ]
    if missing:
        die(f"addons not installed in {dbname}: {', '.join(missing)}")
    if not with_demo:
        die(f"{dbname} was installed without demo data; the tests need it")


def cmd_check_test_imports(_args):
    """Odoo's own runner (odoo-bin --test-enable) only runs the test modules that
    ``<addon>/tests/__init__.py`` imports; pytest finds every test_*.py by itself. Report
    files only one of them would run."""
    problems = []
    for addon in repo_addons():
        tests = REPO_ROOT / addon / "tests"
        init = tests / "__init__.py"
        files = sorted(p.stem for p in tests.glob("test_*.py"))
        if not files:
            continue
        if not init.is_file():
            problems.append(f"{addon}/tests has no __init__.py")
            continue
        imported = set()
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:
                    imported.update(alias.name for alias in node.names)
        missing = [name for name in files if name not in imported]
        if missing:
            problems.append(
                f"{addon}/tests/__init__.py does not import {', '.join(missing)} "
                "(Odoo's test runner would skip them)"
            )
    if problems:
        die("; ".join(problems))


def cmd_free_port(_args):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])


COMMANDS = {
    "check-odoo": cmd_check_odoo,
    "odoo-bin": cmd_odoo_bin,
    "addons-path": cmd_addons_path,
    "odoo-env": cmd_odoo_env,
    "addons": cmd_addons,
    "constraints": cmd_constraints,
    "deps-satisfied": cmd_deps_satisfied,
    "check-pg": cmd_check_pg,
    "db-exists": cmd_db_exists,
    "drop-db": cmd_drop_db,
    "write-config": cmd_write_config,
    "check-installed": cmd_check_installed,
    "check-test-imports": cmd_check_test_imports,
    "free-port": cmd_free_port,
}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        die(f"usage: harness.py {{{'|'.join(COMMANDS)}}} [args]")
    try:
        COMMANDS[argv[0]](argv[1:])
    except ValueError:
        die(f"wrong arguments for {argv[0]}: {' '.join(argv[1:])}")


if __name__ == "__main__":
    main(sys.argv[1:])
