#!/usr/bin/env bash
# Run every check and test of the repo; the exit code is pytest's (0 = all passed).
#
#   bash setup/test.sh                           # lint, packaging, fresh DB, all tests
#   bash setup/test.sh -k recurring -x           # extra arguments go to pytest
#   FLEX_LINT=0 bash setup/test.sh               # skip lint while iterating
#   FLEX_KEEP_DB=1 bash setup/test.sh            # keep the test database afterwards
#   FLEX_TEST_DB=flex_dev FLEX_REUSE_DB=1 bash setup/test.sh   # reuse an installed DB:
#                                                # -u the addons instead of a fresh install
#
# Steps, each stopping the run with one ERROR line when it fails:
#   1. Odoo 18.0 importable, PostgreSQL reachable (never skipped: no Odoo, no green run)
#   2. the project's Python packages (setup/requirements-test.txt, within Odoo's pins)
#   3. lint: ruff + ruff format + pylint-odoo (setup/lint.sh)
#   4. packaging: one wheel per addon with whool, checked (setup/build_wheels.sh --check)
#   5. a fresh database with a unique name, every addon of the repo installed with demo
#      data (one install per run), dropped again at exit
#   6. pytest + pytest-odoo over <addon>/tests and tests/: pure-Python (hypothesis) tests,
#      ORM tests, HttpCase and browser tours (--odoo-http, headless Chromium).
# Environment (all optional): PYTHON, ODOO_BIN, ODOO_ADDONS_PATH, PGHOST, PGPORT, PGUSER,
# PGPASSWORD, FLEX_SKIP_DEPS=1, FLEX_LINT=0, FLEX_PACKAGING=0, FLEX_KEEP_DB=1,
# FLEX_TEST_DB, FLEX_REUSE_DB=1, FLEX_ALL_TAGS=1 (also run classes tagged -standard).
set -uo pipefail
# shellcheck source=setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$FLEX_ROOT" || exit 1
started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*"; }

# 1. what the run cannot do without
flex_require_odoo
flex_require_pg

# 2. the project's own packages
flex_install_deps
addons="$(flex_addons)" || exit 1
step "addons: $addons (Odoo at $ODOO_ROOT)"

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/flex-test.XXXXXX")"
db="${FLEX_TEST_DB:-flex_test_$(date +%Y%m%d_%H%M%S)_$$_${RANDOM}}"
# Filestores live under data_dir/filestore/<db>: one data_dir for all runs (as with
# start.sh), so a kept database keeps its files; each run removes only its own.
data_dir="${FLEX_STATE_DIR:-${HOME:-/tmp}/.local/share/subscription_flex}/data"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [ "${FLEX_KEEP_DB:-0}" != 1 ] && [ "${FLEX_REUSE_DB:-0}" != 1 ]; then
        "${HARNESS[@]}" drop-db "$db" >/dev/null 2>&1 || true
        rm -rf "${data_dir:?}/filestore/${db:?}"
    fi
    rm -rf "$run_dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 3. lint
if [ "${FLEX_LINT:-1}" = 1 ]; then
    step "lint"
    bash setup/lint.sh || exit 1
fi

# 4. packaging
if [ "${FLEX_PACKAGING:-1}" = 1 ]; then
    step "packaging (whool wheels)"
    bash setup/build_wheels.sh --check --worktree -o "$run_dir/wheels" || exit 1
fi

# Browser tests: Odoo looks for google-chrome, chromium, chromium-browser or
# google-chrome-stable on PATH. With one, a browser test that cannot start fails.
browser=""
for candidate in google-chrome chromium chromium-browser google-chrome-stable; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser="$(command -v "$candidate")"
        break
    fi
done
if [ -n "$browser" ]; then
    export FLEX_REQUIRE_BROWSER="${FLEX_REQUIRE_BROWSER:-1}"
else
    echo "WARNING: no Chromium on PATH: browser tests (tours) will be SKIPPED; install it with: apt-get install chromium" >&2
fi

# 5. one database with every addon and its demo data
config="$run_dir/odoo.cfg"
"${HARNESS[@]}" write-config "$config" "$db" "$data_dir" "$("${HARNESS[@]}" free-port)" || exit 1
if [ "${FLEX_REUSE_DB:-0}" = 1 ] && "${HARNESS[@]}" db-exists "$db"; then
    step "updating $addons in existing database $db"
    mode=(-u "$addons")
else
    if [ -n "${FLEX_TEST_DB:-}" ] && "${HARNESS[@]}" db-exists "$db"; then
        FLEX_KEEP_DB=1  # not ours: never drop it at exit either
        flex_die "database $db exists: reuse it with FLEX_REUSE_DB=1, or drop it first (setup/test.sh only drops databases it created)"
    fi
    step "installing $addons with demo data in a new database $db"
    mode=(-i "$addons")
fi
install_log="$run_dir/install.log"
"$PYTHON" "$ODOO_BIN" -c "$config" -d "$db" "${mode[@]}" --stop-after-init --no-http \
    --log-level=warn >"$install_log" 2>&1
install_rc=$?
# Odoo logs errors in data files, views or demo data and may still exit 0.
if [ "$install_rc" != 0 ] || grep -qE '^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) ' "$install_log"; then
    # the log from the first error on (Odoo prints the cause after the traceback)
    first="$(grep -nE '^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) ' "$install_log" | head -1 | cut -d: -f1)"
    sed -n "${first:-1},\$p" "$install_log" | head -120 >&2
    flex_die "installing $addons in $db failed (odoo-bin exit code $install_rc; errors above)"
fi
grep -E ' (WARNING) ' "$install_log" | grep -E "odoo\.addons\.($(echo "$addons" | tr ',' '|'))" | head -20
"${HARNESS[@]}" check-installed "$db" "$addons" || exit 1

# 6. the tests
paths=()
for addon in ${addons//,/ }; do
    [ -d "$addon/tests" ] && paths+=("$addon/tests")
done
if [ -d tests ] && [ -n "$(find tests -name 'test_*.py' -print -quit)" ]; then
    paths+=(tests)
fi
[ "${#paths[@]}" -gt 0 ] || flex_die "no test directory: expected <addon>/tests or tests/"
# Test files or directories named on the command line replace the default paths.
for arg in "$@"; do
    case "$arg" in
        -*) ;;
        *) if [ -e "${arg%%::*}" ]; then paths=(); break; fi ;;
    esac
done
step "pytest ${paths[*]}"
"$PYTHON" -m pytest -p no:cacheprovider \
    --odoo-config="$config" --odoo-database="$db" --odoo-log-level=warn --odoo-http \
    "${paths[@]}" "$@"
rc=$?
if [ "$rc" = 5 ]; then
    echo "ERROR: pytest collected no test" >&2
fi
exit "$rc"
