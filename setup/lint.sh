#!/usr/bin/env bash
# Lint every Python file of the repo: ruff (lint + format check) and pylint-odoo on each
# addon. The same checks as .pre-commit-config.yaml, but on the working tree (tracked AND
# untracked files), with no git needed. Exit code non-zero when any check fails.
#   bash setup/lint.sh            # check
#   bash setup/lint.sh --fix      # let ruff fix what it can and reformat, then check
set -uo pipefail
# shellcheck source=setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$FLEX_ROOT" || exit 1

fix=0
[ "${1:-}" = "--fix" ] && fix=1

command -v ruff >/dev/null 2>&1 || "$PYTHON" -m ruff --version >/dev/null 2>&1 \
    || flex_die "ruff is not installed: pip install -r setup/requirements-test.txt"
"$PYTHON" -c "import pylint_odoo" 2>/dev/null \
    || flex_die "pylint-odoo is not installed: pip install -r setup/requirements-test.txt"

status=0
if [ "$fix" = 1 ]; then
    "$PYTHON" -m ruff check --fix --quiet . || true
    "$PYTHON" -m ruff format --quiet .
fi
echo "== ruff check"
"$PYTHON" -m ruff check --no-fix --output-format=concise . || status=1
echo "== ruff format --check"
"$PYTHON" -m ruff format --check --output-format=concise . || status=1

mapfile -t addons < <(find . -mindepth 2 -maxdepth 2 -name __manifest__.py -printf '%h\n' | sed 's|^\./||' | sort)
if [ "${#addons[@]}" -gt 0 ]; then
    echo "== pylint-odoo ${addons[*]}"
    "$PYTHON" -m pylint --rcfile=.pylintrc "${addons[@]}" || status=1
fi
echo "== tests/__init__.py imports every test file"
"${HARNESS[@]}" check-test-imports || status=1
if [ "$status" != 0 ]; then
    echo "ERROR: lint failed (see above); 'bash setup/lint.sh --fix' fixes the style part" >&2
fi
exit "$status"
