#!/usr/bin/env python3
"""SEPA direct-debit benchmark: N open invoices -> debit batch -> validated pain.008.

Builds its own database (subscription_flex_sepa, no demo, EUR company), seeds N customers
with a valid mandate and a direct-debit subscription, invoices them (committed), then times
in one transaction that is rolled back:

1. ``action_collect``: the batch and its N debit lines (mandate, sequence type, TARGET2
   collection date, exclusions);
2. ``_build_pain008``: the pain.008 document built with sepaxml, finished (MsgId, PmtInfId,
   batch booking, amendments) and validated with lxml against the official XSD;
3. the baseline, in the same run: sepaxml alone building the same N payments and
   validating them itself (``export(validate=True)``) -- the floor of a file with that
   library;
4. with ``--generate``, ``action_generate`` (file, attachment, one payment per invoice
   reconciled with it, the mandates moved on, the pre-notifications queued).

    python3 tests/benchmarks/bench_sepa.py --n 10000 [--template bench_sepa_tpl] [--generate]
"""

import argparse
import logging
import os
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ODOO_ROOT = Path(os.environ.get("ODOO_ROOT", "/opt/odoo"))
if str(ODOO_ROOT) not in sys.path and (ODOO_ROOT / "odoo" / "__init__.py").exists():
    sys.path.insert(0, str(ODOO_ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import install_addon, prepared_registry, say, vacuum_analyze  # noqa: E402

import odoo  # noqa: E402

INVOICE_DAY = date(2027, 3, 1)


def configure_odoo(db, log_level):
    paths = [ODOO_ROOT / "addons", ODOO_ROOT / "odoo" / "addons", REPO]
    odoo.tools.config.parse_config(
        [
            f"--addons-path={','.join(str(p) for p in paths if p.is_dir())}",
            f"--database={db}",
            "--without-demo=all",
            f"--log-level={log_level}",
            "--max-cron-threads=0",
        ]
    )


def german_iban(n):
    """A valid German IBAN for account number ``n`` at bank 37040044."""
    bban = f"37040044{n:010d}"
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
    return f"DE{check:02d}{bban}"


def install(db):
    return install_addon(db, "subscription_flex_sepa")


def seed(registry, n):
    Command = odoo.fields.Command
    started = time.perf_counter()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        eur = env.ref("base.EUR")
        eur.active = True
        company = env.company
        company.currency_id = eur
        if not company.chart_template:
            env["account.chart.template"].try_loading("generic_coa", company, install_demo=False)
        bank = env["res.bank"].create({"name": "Bench Bank", "bic": "COBADEFFXXX"})
        account = env["res.partner.bank"].create(
            {
                "acc_number": "DE89370400440532013000",
                "partner_id": company.partner_id.id,
                "bank_id": bank.id,
            }
        )
        journal = env["account.journal"].create(
            {"name": "SEPA", "type": "bank", "code": "BSDD", "bank_account_id": account.id}
        )
        company.write(
            {
                "flex_sepa_creditor_id": "DE98ZZZ09999999999",
                "flex_sepa_journal_id": journal.id,
                "flex_sepa_prenotification_days": 2,
            }
        )
        tax = env["account.tax"].create(
            {"name": "Bench 19%", "amount": 19, "type_tax_use": "sale", "company_id": company.id}
        )
        product = env["product.product"].create(
            {
                "name": "Bench Seat",
                "type": "service",
                "lst_price": 29.9,
                "flex_is_subscription": True,
                "taxes_id": [Command.set(tax.ids)],
            }
        )
        plan = env["flex.plan"].create({"name": "Bench monthly", "invoicing_mode": "post"})
        partners = env["res.partner"].create([{"name": f"Debtor {i:05d}"} for i in range(n)])
        accounts = env["res.partner.bank"].create(
            [{"acc_number": german_iban(i + 1), "partner_id": p.id} for i, p in enumerate(partners)]
        )
        env["flex.sepa.mandate"].create(
            [
                {
                    "partner_id": p.id,
                    "partner_bank_id": a.id,
                    "signature_date": date(2026, 12, 1),
                    "state": "valid",
                }
                for p, a in zip(partners, accounts, strict=True)
            ]
        )
        subs = env["flex.subscription"].create(
            [
                {
                    "partner_id": p.id,
                    "plan_id": plan.id,
                    "start_date": INVOICE_DAY,
                    "currency_id": eur.id,
                    "payment_method": "sepa",
                    "line_ids": [Command.create({"product_id": product.id, "quantity": 1 + i % 5})],
                }
                for i, p in enumerate(partners)
            ]
        )
        subs.action_confirm()
        sub_ids = subs.ids
        cr.commit()
        say(f"seeded {n} debtors, mandates, subscriptions in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
            chunk = env["flex.subscription"].browse(sub_ids[start : start + 1000])
            chunk._create_recurring_invoices(INVOICE_DAY)
    say(f"invoiced {n} subscriptions in {time.perf_counter() - started:.0f} s")
    vacuum_analyze(registry.db_name)


def baseline(batch, journal):
    """sepaxml alone, same payments, validated by sepaxml itself."""
    from decimal import Decimal

    from sepaxml import SepaDD

    from odoo.addons.subscription_flex_sepa.core import sepa

    company = batch.company_id
    rows = [
        {
            "name": line.partner_id.name,
            "IBAN": line.mandate_id.partner_bank_id.sanitized_acc_number,
            "amount": sepa.amount_in_cents(Decimal(repr(line.amount))),
            "type": line.sequence_type,
            "collection_date": line.collection_date,
            "mandate_id": line.mandate_id.reference,
            "mandate_date": line.mandate_id.signature_date,
            "description": line.invoice_id.name,
            "endtoend_id": line.end_to_end_id,
        }
        for line in batch.line_ids
    ]
    started = time.perf_counter()
    builder = SepaDD(
        {
            "name": company.name,
            "IBAN": journal.bank_account_id.sanitized_acc_number,
            "BIC": journal.bank_id.bic,
            "batch": True,
            "creditor_id": company.flex_sepa_creditor_id,
            "currency": "EUR",
        },
        schema="pain.008.001.08",
    )
    for row in rows:
        builder.add_payment(row)
    builder.export(validate=True)
    return time.perf_counter() - started


def measure(registry, n, with_generate):
    # No frozen clock here: freezegun stops time.perf_counter too. The invoices are due by
    # INVOICE_DAY; the collection dates follow from today.
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        journal = env.company.flex_sepa_journal_id
        started = time.perf_counter()
        batch = env["flex.sepa.batch"].create({"due_by": INVOICE_DAY})
        batch.action_collect()
        env.flush_all()
        t_collect = time.perf_counter() - started
        assert batch.debit_count == n, (batch.debit_count, len(batch.excluded_line_ids))
        started = time.perf_counter()
        xml = batch._build_pain008(journal)
        t_file = time.perf_counter() - started
        t_base = baseline(batch, journal)
        t_generate = None
        if with_generate:
            started = time.perf_counter()
            batch.action_generate()
            env.flush_all()
            t_generate = time.perf_counter() - started
        say()
        say(f"{n:,} debits, control sum {batch.control_sum:,.2f} EUR, file {len(xml) / 1e6:.1f} MB")
        say(f"collect (batch + {n:,} lines)            {t_collect:6.2f} s")
        say(f"pain.008 build + XSD validation           {t_file:6.2f} s")
        say(f"batch + validated pain.008                {t_collect + t_file:6.2f} s")
        say(f"baseline: sepaxml alone, self-validated   {t_base:6.2f} s")
        say(f"ratio file / baseline                     {t_file / t_base:6.2f}")
        if t_generate is not None:
            say(f"generate (file + {n:,} payments + mandates) {t_generate:6.2f} s")
        cr.rollback()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--db", default="bench_sepa")
    parser.add_argument("--template", help="seeded database to copy (made when missing)")
    parser.add_argument("--log-level", default="warn")
    parser.add_argument(
        "--generate",
        action="store_true",
        help="also time action_generate (the file, then one Odoo payment per invoice)",
    )
    args = parser.parse_args()
    configure_odoo(args.db, args.log_level)
    logging.getLogger("odoo").setLevel(logging.WARNING)
    registry = prepared_registry(args, install, lambda r: seed(r, args.n))
    measure(registry, args.n, args.generate)


if __name__ == "__main__":
    main()
