#!/usr/bin/env bash
# Start Odoo 18.0 with this repo's addons and their demo data on http://127.0.0.1:8069
#
#   bash setup/start.sh                 # create/update database "subscription_flex", serve
#   FLEX_DB=mydb bash setup/start.sh    # another database
#   FLEX_RESET=1 bash setup/start.sh    # drop the database first and start from scratch
#   bash setup/start.sh --dev=xml       # extra arguments go to odoo-bin
#
# Environment (all optional): FLEX_DB (default subscription_flex), FLEX_HTTP_PORT (8069),
# FLEX_RESET=1, PYTHON, ODOO_BIN, ODOO_ADDONS_PATH, PGHOST, PGPORT, PGUSER, PGPASSWORD,
# FLEX_SKIP_DEPS=1. Log in as admin / admin (Odoo's demo admin).
set -euo pipefail
# shellcheck source=setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$FLEX_ROOT"

flex_require_odoo
flex_require_pg
flex_install_deps

db="${FLEX_DB:-subscription_flex}"
port="${FLEX_HTTP_PORT:-8069}"
addons="$(flex_addons)"
state_dir="${FLEX_STATE_DIR:-${HOME:-/tmp}/.local/share/subscription_flex}"
mkdir -p "$state_dir"
config="$state_dir/$db.cfg"
"${HARNESS[@]}" write-config "$config" "$db" "$state_dir/data" "$port"

if [ "${FLEX_RESET:-0}" = 1 ]; then
    echo "Dropping database $db (FLEX_RESET=1)..."
    "${HARNESS[@]}" drop-db "$db"
    rm -rf "$state_dir/data/filestore/$db"
fi

if "${HARNESS[@]}" db-exists "$db"; then
    echo "Updating $addons in database $db..."
    mode=(-u "$addons")
else
    echo "Creating database $db with $addons and demo data (a few minutes the first time)..."
    mode=(-i "$addons")
fi
# Install/update first, stopping after init, so a failure is reported plainly
# instead of being buried in the server log.
if ! "$PYTHON" "$ODOO_BIN" -c "$config" -d "$db" "${mode[@]}" --stop-after-init --no-http \
    --log-level=warn; then
    flex_die "installing $addons in $db failed (see the log above)"
fi
"${HARNESS[@]}" check-installed "$db" "$addons"

echo "Odoo is starting on http://127.0.0.1:$port (database $db, login admin / admin); Ctrl+C stops it."
exec "$PYTHON" "$ODOO_BIN" -c "$config" -d "$db" --log-level=info "$@"
