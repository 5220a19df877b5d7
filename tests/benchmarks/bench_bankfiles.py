#!/usr/bin/env python3
"""Bank-file benchmark: a camt.053 of N settlements and a camt.054 of N returns, imported.

Builds its own database like ``bench_sepa.py`` (N debtors with a mandate and a direct-debit
subscription, invoiced), collects the N invoices in one generated batch (N payments in
process), commits; then, each in a transaction that is rolled back:

1. ``camt.053`` with N entries, one credit per debit (the per-transaction bank style):
   ``flex.sepa.bank.file._import_file`` parses, validates against the XSD, books N
   statement lines, matches and reconciles them with the N payments (invoices paid);
2. ``camt.054`` with N returns (AM04, a 3.50 fee each): N statement lines with the
   receivable and the fee, N payments undone, N invoices open again, N returns with their
   policy (retry); the customer e-mails are queued afterwards by the mail cron, timed apart;
3. the baseline, in the same run: Odoo's own ``account.bank.statement.line.create`` of the
   same lines (what a plain statement import books, before any matching), for the first
   ``--baseline-n`` of them (1,000: Odoo takes about 6 minutes for 10,000), compared per entry.

    python3 tests/benchmarks/bench_bankfiles.py --n 10000 [--template bench_bank_tpl]
"""

import argparse
import logging
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import prepared_registry, say, vacuum_analyze  # noqa: E402
from bench_sepa import INVOICE_DAY, configure_odoo, install, seed  # noqa: E402

import odoo  # noqa: E402

CREDITOR_IBAN = "DE89370400440532013000"


def collect(registry):
    """One generated batch of every due invoice: N payments in process (committed)."""
    started = time.perf_counter()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        company = env.company
        company.flex_sepa_journal_id.currency_id = env.ref("base.EUR")
        company.flex_sepa_fee_account_id = env["account.account"].search(
            [("account_type", "=", "expense")], limit=1
        )
        batch = env["flex.sepa.batch"].create({"due_by": INVOICE_DAY})
        batch.action_collect()
        batch.action_generate()
        say(f"collected {batch.debit_count:,} debits in {time.perf_counter() - started:.0f} s")
    vacuum_analyze(registry.db_name)


def debits(env):
    lines = env["flex.sepa.batch.line"].search([("state", "=", "collected")], order="id")
    return [
        (line.end_to_end_id, Decimal(repr(line.amount)), line.collection_date) for line in lines
    ]


def timed(env, function):
    started = time.perf_counter()
    result = function()
    env.flush_all()
    return result, time.perf_counter() - started


def load_builders():
    """The test suite's ISO 20022 writers, loaded by path (the addon's tests package would
    import Odoo's test framework)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "subscription_flex_sepa/tests/bankfiles.py"
    spec = importlib.util.spec_from_file_location("bankfiles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(registry, baseline_n, mails=True):
    bankfiles = load_builders()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        rows = debits(env)
        n = len(rows)
        day = max(row[2] for row in rows)
    settlements = bankfiles.camt053(
        "camt.053.001.08",
        CREDITOR_IBAN,
        [
            {"kind": "credit", "amount": amount, "date": day, "ref": f"S{i}", "end_to_end_id": e2e}
            for i, (e2e, amount, _day) in enumerate(rows)
        ],
        msg_id="BENCH-STMT",
    )
    returns = bankfiles.camt054(
        "camt.054.001.08",
        CREDITOR_IBAN,
        [
            {
                "kind": "return",
                "amount": amount,
                "fee": Decimal("3.50"),
                "date": day,
                "ref": f"R{i}",
                "end_to_end_id": e2e,
                "reason": "AM04",
            }
            for i, (e2e, amount, _day) in enumerate(rows)
        ],
        msg_id="BENCH-NTF",
    )
    say(f"files: camt.053 {len(settlements) / 1e6:.1f} MB, camt.054 {len(returns) / 1e6:.1f} MB")
    results = {}
    for name, data in (("camt.053", settlements), ("camt.054", returns)):
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
            # Odoo's global counter (a cursor's own is reset when it logs); the pages of
            # execute_values, which go to psycopg2 directly, are not counted.
            queries = odoo.sql_db.sql_counter
            bank_file, seconds = timed(
                env, lambda e=env, d=data, f=name: e["flex.sepa.bank.file"]._import_file(d, f)
            )
            results[name] = seconds
            say()
            say(
                f"{name}: {bank_file.entry_count:,} entries, {bank_file.matched_count:,} settled, "
                f"{bank_file.return_count:,} returned, {bank_file.unmatched_count:,} left open"
            )
            say(
                f"  import                                  {seconds:6.2f} s "
                f"({odoo.sql_db.sql_counter - queries:,} queries)"
            )
            if name == "camt.054":
                paid = env["account.move"].search_count(
                    [("move_type", "=", "out_invoice"), ("payment_state", "=", "not_paid")]
                )
                say(f"  invoices open again                     {paid:,}")

                def send_mails(e=env):
                    sent = 0
                    while batch := e["flex.sepa.return"]._cron_send_mails(limit=1000):
                        sent += len(batch)
                    return sent

                if mails:
                    sent, seconds = timed(env, send_mails)
                    say(f"  then the mail cron queues {sent:,} e-mails  {seconds:6.2f} s")
            else:
                paid = env["account.move"].search_count(
                    [("move_type", "=", "out_invoice"), ("payment_state", "=", "paid")]
                )
                say(f"  invoices paid                           {paid:,}")
            cr.rollback()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        journal = env.company.flex_sepa_journal_id
        _lines, baseline = timed(
            env,
            lambda: env["account.bank.statement.line"].create(
                [
                    {
                        "journal_id": journal.id,
                        "date": day,
                        "amount": float(amount),
                        "payment_ref": e2e,
                    }
                    for e2e, amount, _day in rows[:baseline_n]
                ]
            ),
        )
        cr.rollback()
    say()
    per_line = baseline / min(baseline_n, n)
    say(
        f"baseline: Odoo creates {min(baseline_n, n):,} statement lines {baseline:6.2f} s "
        f"({per_line * 1000:.1f} ms each, {per_line * n:.0f} s for {n:,})"
    )
    for name, seconds in results.items():
        say(f"ratio {name} import / baseline, per entry  {seconds / n / per_line:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--db", default="bench_bank")
    parser.add_argument("--template", help="seeded database to copy (made when missing)")
    parser.add_argument("--log-level", default="warn")
    parser.add_argument(
        "--baseline-n",
        type=int,
        default=1000,
        help="statement lines the baseline creates (Odoo takes minutes for 10,000)",
    )
    parser.add_argument(
        "--no-mails", action="store_true", help="skip timing the mail cron (3 minutes)"
    )
    args = parser.parse_args()
    configure_odoo(args.db, args.log_level)
    logging.getLogger("odoo").setLevel(logging.WARNING)
    registry = prepared_registry(args, install, lambda r: seed(r, args.n), collect)
    measure(registry, args.baseline_n, not args.no_mails)


if __name__ == "__main__":
    main()
