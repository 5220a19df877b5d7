#!/usr/bin/env bash
# The slow variants of the tests, through setup/test.sh (CI runs the small ones):
#   1. the three parallel-worker tests (two real odoo-bin servers on one database:
#      invoicing, scheduled changes, reminders) at 10,000 subscriptions each;
#   2. the fuzz tests (bank files, usage events) with 20,000 examples per property, new
#      random examples each run (HYPOTHESIS_PROFILE=dev);
#   3. the randomized money scenarios (test_money_scenarios.py) with 300 scenarios and new
#      seeds each run (FLEX_MONEY_SCENARIOS, FLEX_MONEY_SEED_BASE; FLEX_MONEY_SEED=<seed>
#      replays one).
# Lint and packaging run once, in the first step. Each step installs its own database,
# unless FLEX_TEST_DB/FLEX_REUSE_DB say otherwise (as for setup/test.sh). Exit code: 0
# when every step passed.
#
#   bash setup/slow.sh                                   # all three
#   FLEX_WORKERS_SUBSCRIPTIONS=5000 bash setup/slow.sh   # other sizes
#   bash setup/slow.sh -x                                # extra arguments go to pytest
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
status=0

echo "== slow 1/3: parallel workers, ${FLEX_WORKERS_SUBSCRIPTIONS:-10000} subscriptions"
FLEX_WORKERS_SUBSCRIPTIONS="${FLEX_WORKERS_SUBSCRIPTIONS:-10000}" \
    bash "$here/test.sh" -k test_cron_workers -s --durations=0 "$@" || status=1

echo "== slow 2/3: fuzz tests, ${FLEX_FUZZ_EXAMPLES:-20000} examples"
FLEX_LINT=0 FLEX_PACKAGING=0 FLEX_SKIP_DEPS=1 \
    FLEX_FUZZ_EXAMPLES="${FLEX_FUZZ_EXAMPLES:-20000}" \
    HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-dev}" \
    bash "$here/test.sh" -k fuzz --durations=0 "$@" || status=1

money_base="${FLEX_MONEY_SEED_BASE:-$(( (RANDOM << 15) | RANDOM ))}"
echo "== slow 3/3: money scenarios, ${FLEX_MONEY_SCENARIOS:-300} from seed $money_base"
FLEX_LINT=0 FLEX_PACKAGING=0 FLEX_SKIP_DEPS=1 \
    FLEX_MONEY_SCENARIOS="${FLEX_MONEY_SCENARIOS:-300}" FLEX_MONEY_SEED_BASE="$money_base" FLEX_ALL_TAGS=1 \
    bash "$here/test.sh" -k TestMoneyScenarios --durations=0 "$@" || status=1

[ "$status" = 0 ] || echo "ERROR: a slow test failed (see above)" >&2
exit "$status"
