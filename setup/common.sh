# shellcheck shell=bash
# Sourced by the scripts of setup/: paths, the python to use, and the dependency install.
# Environment it reads (all optional):
#   PYTHON            python interpreter that has Odoo 18.0          (default: python3)
#   ODOO_BIN          path of odoo-bin                               (default: next to the odoo package)
#   ODOO_ADDONS_PATH  Odoo's own addons dirs, comma-separated        (default: found from the odoo package)
#   PGHOST PGPORT PGUSER PGPASSWORD   where PostgreSQL is             (default: local socket, current user)
#   FLEX_SKIP_DEPS=1  do not pip install setup/requirements-test.txt

FLEX_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
HARNESS=("$PYTHON" "$FLEX_ROOT/setup/harness.py")

flex_die() {
    echo "ERROR: $*" >&2
    exit 1
}

# One clear line and exit 1 when Odoo 18.0 is missing; otherwise sets ODOO_ROOT.
flex_require_odoo() {
    command -v "$PYTHON" >/dev/null 2>&1 || flex_die "$PYTHON not found: install Python 3.11 and Odoo 18.0 first"
    local assignments
    assignments="$("${HARNESS[@]}" odoo-env)" || exit 1
    eval "$assignments"
    export ODOO_ROOT ODOO_BIN FLEX_ADDONS_PATH
}

# One clear line and exit 1 when PostgreSQL cannot be reached (or the role cannot createdb).
flex_require_pg() {
    "${HARNESS[@]}" check-pg || exit 1
}

# Installs setup/requirements-test.txt with Odoo's pins as constraints, so no package Odoo
# pinned changes. Skipped when every pin is already installed (fast path).
flex_install_deps() {
    local requirements="$FLEX_ROOT/setup/requirements-test.txt"
    if [ "${FLEX_SKIP_DEPS:-0}" = 1 ] || "${HARNESS[@]}" deps-satisfied "$requirements"; then
        return 0
    fi
    local constraints
    constraints="$(mktemp "${TMPDIR:-/tmp}/flex-constraints.XXXXXX")"
    "${HARNESS[@]}" constraints "$constraints" || exit 1
    echo "Installing the project's Python packages (setup/requirements-test.txt)..."
    if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
        -c "$constraints" -r "$requirements" 2> >(grep -v -e "is ignored: it is neither" -e "Running pip as the 'root' user" >&2); then
        rm -f "$constraints"
        flex_die "pip could not install setup/requirements-test.txt within Odoo's pins (see above)"
    fi
    rm -f "$constraints"
}

# Installable addons of this repo, comma-joined (every dir with a __manifest__.py).
flex_addons() {
    "${HARNESS[@]}" addons || exit 1
}
