#!/usr/bin/env bash
# Build one wheel per addon (every directory of the repo with a __manifest__.py) with
# whool: odoo-addon-<addon>-<manifest version>-py3-none-any.whl, into dist/.
#
#   bash setup/build_wheels.sh                  # from git: tracked files only (release)
#   bash setup/build_wheels.sh --worktree       # from the working tree (untracked files too)
#   bash setup/build_wheels.sh --check -o DIR   # build + verify each wheel (used by test.sh)
#
# whool puts in the wheel the files `git ls-files` lists (git-added is enough, no commit
# needed). So a release build refuses to run while an addon has untracked files that git
# does not ignore: they would be silently left out. --worktree copies the working tree
# (tracked + untracked, minus .gitignore'd) to a temporary directory and builds there.
# The wheels depend on odoo==18.0.* (whool derives it from the manifest version), which no
# index serves here: that is why every pip call below uses --no-deps.
set -euo pipefail
# shellcheck source=setup/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$FLEX_ROOT"

out="dist"
worktree=0
check=0
while [ $# -gt 0 ]; do
    case "$1" in
        -o|--output) out="$2"; shift 2 ;;
        --worktree) worktree=1; shift ;;
        --check) check=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) flex_die "build_wheels.sh: unknown option $1" ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

"$PYTHON" -c "import whool" 2>/dev/null \
    || flex_die "whool is not installed: pip install -r setup/requirements-test.txt"
in_git=0
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && in_git=1

mapfile -t addons < <(find . -mindepth 2 -maxdepth 2 -name __manifest__.py -printf '%h\n' | sed 's|^\./||' | sort)
[ "${#addons[@]}" -gt 0 ] || flex_die "no addon (directory with __manifest__.py) in $FLEX_ROOT"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/flex-wheels.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

for addon in "${addons[@]}"; do
    [ -f "$addon/pyproject.toml" ] \
        || flex_die "$addon has no pyproject.toml: add one with [build-system] requires=[\"whool\"] build-backend=\"whool.buildapi\""
    src="$addon"
    if [ "$in_git" = 1 ]; then
        untracked="$(git ls-files --others --exclude-standard -- "$addon")"
        if [ "$worktree" = 1 ]; then
            # Same file list whool would take from git, plus the untracked files;
            # outside any git repo whool copies the whole directory.
            src="$tmp/src/$addon"
            mkdir -p "$src"
            git ls-files --cached --others --exclude-standard -z -- "$addon" \
                | (cd "$FLEX_ROOT/$addon" && sed -z "s|^$addon/||" | xargs -0 -r cp --parents -t "$src")
        elif [ -n "$untracked" ]; then
            flex_die "$addon has untracked files that the wheel would leave out (git add them, or use --worktree): $(echo "$untracked" | head -3 | tr '\n' ' ')"
        fi
    fi
    # --no-build-isolation: whool comes from setup/requirements-test.txt, no download.
    case "$src" in /*) ;; *) src="./$src" ;; esac
    rm -rf "$tmp/built"
    if ! "$PYTHON" -m pip wheel --disable-pip-version-check --no-deps \
        --no-build-isolation -w "$tmp/built" "$src" >"$tmp/pip.log" 2>&1; then
        cat "$tmp/pip.log" >&2
        flex_die "pip wheel failed for $addon (see above)"
    fi
    wheel="$(find "$tmp/built" -maxdepth 1 -name "odoo_addon_${addon}-*.whl" -print -quit)"
    [ -n "$wheel" ] || flex_die "pip wheel built no odoo_addon_${addon}-*.whl: $(tail -3 "$tmp/pip.log" | tr '\n' ' ')"
    mv -f "$wheel" "$out/"
    wheel="$out/$(basename "$wheel")"
    if [ "$check" = 1 ]; then
        "$PYTHON" - "$wheel" "$addon" "$src" <<'PY' || exit 1
import ast
import sys
import zipfile
from pathlib import Path

wheel, addon, src = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
manifest = ast.literal_eval((src / "__manifest__.py").read_text(encoding="utf-8"))
# whool may append a git post-version (.N) to the manifest version
version = wheel.name.split("-")[1]
if version != manifest["version"] and not version.startswith(manifest["version"] + "."):
    sys.exit(f"ERROR: {wheel.name}: version does not match the manifest ({manifest['version']})")
with zipfile.ZipFile(wheel) as zf:
    names = set(zf.namelist())
    metadata = zf.read(f"odoo_addon_{addon}-{version}.dist-info/METADATA").decode()
prefix = f"odoo/addons/{addon}/"
expected = {
    prefix + str(p.relative_to(src))
    for p in src.rglob("*")
    if p.is_file()
    and p.name not in ("pyproject.toml", "PKG-INFO")
    and "__pycache__" not in p.parts
    and p.suffix != ".pyc"
}
missing = sorted(expected - names)
problems = []
if missing:
    problems.append(f"files missing from the wheel: {', '.join(missing[:5])}")
if "Requires-Dist: odoo==18.0.*" not in metadata:
    problems.append("METADATA does not require odoo==18.0.*")
for dep in (manifest.get("external_dependencies") or {}).get("python", []):
    if f"Requires-Dist: {dep}" not in metadata:
        problems.append(f"METADATA does not require {dep} (external_dependencies)")
if problems:
    sys.exit(f"ERROR: {wheel.name}: " + "; ".join(problems))
print(f"packaging ok: {wheel.name} ({len(names)} files)")
PY
    else
        echo "built $wheel"
    fi
done
