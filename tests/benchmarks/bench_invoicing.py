#!/usr/bin/env python3
"""Recurring invoicing benchmark: subscription_flex against OCA ``contract``.

Creates a fresh database with both addons, N customers, N flex subscriptions and N
OCA contracts with the same three taxed product lines, invoices one committed period
of history with each engine, then times ``--runs`` further periods (create + post,
commit included) for both engines in the same run and prints the ratios.

    python3 tests/benchmarks/bench_invoicing.py --n 2000 --runs 3

See README.md beside this file for what is measured and why.
"""

import argparse
import contextlib
import functools
import logging
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ODOO_ROOT = Path(os.environ.get("ODOO_ROOT", "/opt/odoo"))
if str(ODOO_ROOT) not in sys.path and (ODOO_ROOT / "odoo" / "__init__.py").exists():
    sys.path.insert(0, str(ODOO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import copy_db as copy_template  # noqa: E402
from _common import db_exists, drop_db, say, vacuum_analyze  # noqa: E402
from dateutil.relativedelta import relativedelta  # noqa: E402

import odoo  # noqa: E402

_logger = logging.getLogger("bench_invoicing")

FIRST_PERIOD = date(2024, 1, 1)
# Three subscription products: (name, list price); every line is taxed at ~15%.
PRODUCTS = [("Bench Hosting", 49.0), ("Bench Support", 19.9), ("Bench Storage", 7.35)]


# --------------------------------------------------------------------------- setup


def find_addons_path(extra=None, flex_dir=None):
    """Odoo's own addons, the repo (subscription_flex) and wherever pip put OCA contract
    (OCA wheels install under site-packages/odoo/addons)."""
    paths = [ODOO_ROOT / "addons", ODOO_ROOT / "odoo" / "addons", Path(flex_dir or REPO)]
    for entry in sys.path:
        candidate = Path(entry or ".") / "odoo" / "addons"
        if (candidate / "contract" / "__manifest__.py").exists():
            paths.append(candidate)
            break
    else:
        sys.exit("OCA contract not found: pip install --no-deps 'odoo-addon-contract==18.0.*'")
    if extra:
        paths.extend(Path(p) for p in extra.split(","))
    seen, result = set(), []
    for path in paths:
        path = str(path.resolve())
        if path not in seen and Path(path).is_dir():
            seen.add(path)
            result.append(path)
    return ",".join(result)


def configure_odoo(args):
    odoo_args = [
        f"--addons-path={find_addons_path(args.addons_path, args.flex_dir)}",
        f"--database={args.db}",
        "--without-demo=all",
        f"--log-level={args.log_level}",
        "--max-cron-threads=0",
    ]
    odoo.tools.config.parse_config(odoo_args)
    # Odoo's logging is configured by parse_config; keep ours readable.
    logging.getLogger("bench_invoicing").setLevel(logging.INFO)


def create_db(name):
    """Fresh database with subscription_flex and OCA contract installed (no demo data)."""
    from odoo.service import db as db_service

    say(f"creating database {name} (installing subscription_flex, contract) ...")
    started = time.perf_counter()
    db_service._create_empty_database(name)
    odoo.tools.config["init"] = dict.fromkeys(["subscription_flex", "contract"], 1)
    registry = odoo.modules.registry.Registry.new(name, update_module=True)
    odoo.tools.config["init"] = {}
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        if not env.company.chart_template:
            env["account.chart.template"].try_loading(
                "generic_coa", env.company, install_demo=False
            )
    say(f"database ready in {time.perf_counter() - started:.0f} s")
    return registry


def copy_db(template, name):
    """Copy of an installed, unseeded database (PostgreSQL template): saves the install."""
    copy_template(template, name)
    say(f"database {name} copied from {template}")
    return odoo.modules.registry.Registry.new(name)


def sale_tax_15(env):
    company = env.company
    Tax = env["account.tax"]
    tax = Tax.search(
        [
            *Tax._check_company_domain(company),
            ("type_tax_use", "=", "sale"),
            ("amount_type", "=", "percent"),
            ("amount", "=", 15.0),
            ("price_include", "=", False),
        ],
        limit=1,
    )
    return tax or Tax.create(
        {
            "name": "Bench 15%",
            "amount": 15.0,
            "amount_type": "percent",
            "type_tax_use": "sale",
            "company_id": company.id,
        }
    )


def seed_data(registry, n):
    """N customers; the same three lines on a flex subscription and an OCA contract each."""
    Command = odoo.fields.Command
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        if env["flex.subscription"].search_count([("name", "=like", "%")], limit=1):
            say("data already seeded: reusing it")
            return
        started = time.perf_counter()
        tax = sale_tax_15(env)
        products = env["product.product"].create(
            [
                {
                    "name": name,
                    "list_price": price,
                    "type": "service",
                    "flex_is_subscription": True,
                    "taxes_id": [Command.set(tax.ids)],
                }
                for name, price in PRODUCTS
            ]
        )
        plan = env["flex.plan"].create(
            {
                "name": "Bench monthly",
                "billing_interval": 1,
                "billing_unit": "month",
                "invoicing_timing": "advance",
                "invoicing_mode": "post",
            }
        )
        currency = env.company.currency_id
        env["flex.price"].create(
            [
                {
                    "plan_id": plan.id,
                    "product_id": product.id,
                    "currency_id": currency.id,
                    "date_start": FIRST_PERIOD,
                    "price_unit": product.list_price,
                }
                for product in products
            ]
        )
        partners = env["res.partner"].create(
            [
                {"name": f"Bench Customer {i:05d}", "email": f"bench{i}@example.com"}
                for i in range(n)
            ]
        )

        def lines(i):
            # Same quantities and prices for both engines, varied a little per customer.
            return [
                {
                    "product": product,
                    "quantity": 1 + (i + k) % 3,
                    "price_unit": round(product.list_price * (1 + (i % 7) / 100), 2),
                }
                for k, product in enumerate(products)
            ]

        for chunk in range(0, n, 250):
            idx = range(chunk, min(chunk + 250, n))
            subs = env["flex.subscription"].create(
                [
                    {
                        "partner_id": partners[i].id,
                        "plan_id": plan.id,
                        "start_date": FIRST_PERIOD,
                        "line_ids": [
                            Command.create(
                                {
                                    "product_id": line["product"].id,
                                    "quantity": line["quantity"],
                                    "price_unit": line["price_unit"],
                                    "price_overridden": True,
                                }
                            )
                            for line in lines(i)
                        ],
                    }
                    for i in idx
                ]
            )
            subs.action_confirm()
            env["contract.contract"].create(
                [
                    {
                        "name": f"Bench contract {i:05d}",
                        "partner_id": partners[i].id,
                        "contract_type": "sale",
                        "line_recurrence": False,
                        "recurring_rule_type": "monthly",
                        "recurring_interval": 1,
                        "recurring_invoicing_type": "pre-paid",
                        "date_start": FIRST_PERIOD,
                        "recurring_next_date": FIRST_PERIOD,
                        "contract_line_ids": [
                            Command.create(
                                {
                                    "product_id": line["product"].id,
                                    "name": line["product"].name,
                                    "quantity": line["quantity"],
                                    "uom_id": line["product"].uom_id.id,
                                    "date_start": FIRST_PERIOD,
                                    "recurring_next_date": FIRST_PERIOD,
                                    "automatic_price": False,
                                    "specific_price": line["price_unit"],
                                    "price_unit": line["price_unit"],
                                }
                            )
                            for line in lines(i)
                        ],
                    }
                    for i in idx
                ]
            )
            env.flush_all()
            cr.commit()
            env.invalidate_all()
        say(
            f"seeded {n} customers, subscriptions and contracts in "
            f"{time.perf_counter() - started:.0f} s"
        )


# ---------------------------------------------------------------------- measurement


def queries():
    return odoo.sql_db.sql_counter


class FinalizeTimer:
    """Times ``account.move._flex_finalize`` (the posting step) inside the flex cron, so
    the flex figures split into create and post like OCA's. Pending writes are flushed
    before the clock starts, and the post's own writes before it stops."""

    def __init__(self, registry):
        self.cls = registry["account.move"]
        self.original = self.cls._flex_finalize
        self.seconds = 0.0
        self.queries = 0

    def __enter__(self):
        timer, original = self, self.original

        @functools.wraps(original)
        def timed(move_self, *args, **kwargs):
            move_self.env.flush_all()
            started, q0 = time.perf_counter(), queries()
            try:
                return original(move_self, *args, **kwargs)
            finally:
                move_self.env.flush_all()
                timer.seconds += time.perf_counter() - started
                timer.queries += queries() - q0

        self.cls._flex_finalize = timed
        return self

    def __exit__(self, *exc):
        self.cls._flex_finalize = self.original


def run_flex(registry, day, batch_size, with_timer=True):
    """The flex cron as Odoo's runner drives it: one batch, commit, again until done."""
    timer = FinalizeTimer(registry) if with_timer else contextlib.nullcontext()
    with registry.cursor() as cr, timer:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"flex_today": day})
        Sub = env["flex.subscription"]
        max_move = max_move_id(env)
        subs = 0
        q0, started = queries(), time.perf_counter()
        while True:
            done = Sub._cron_create_invoices(batch_size=batch_size)
            env.flush_all()
            cr.commit()  # tracking and other pre-commit work runs here: inside the clock
            env.invalidate_all()
            if not done:
                break
            subs += len(done)
        total = time.perf_counter() - started
        total_queries = queries() - q0
        moves = env["account.move"].search(
            [("id", ">", max_move), ("flex_subscription_id", "!=", False)]
        )
        assert all(m.state == "posted" for m in moves), "flex left invoices unposted"
        post = timer.seconds if with_timer else 0.0
        post_queries = timer.queries if with_timer else 0
        return {
            "subs": subs,
            "invoices": len(moves),
            "create": total - post,
            "post": post,
            "total": total,
            "queries": total_queries,
            "post_queries": post_queries,
            "amount": round(sum(moves.mapped("amount_total")), 2),
            "lines": sum(len(m.line_ids) for m in moves),
        }


def run_oca(registry, day):
    """OCA contract's cron (invoices stay draft), then posting them, each committed."""
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        max_move = max_move_id(env)
        Contract = env["contract.contract"]
        subs = Contract.search_count([("recurring_next_date", "<=", day)])
        q0, started = queries(), time.perf_counter()
        Contract.cron_recurring_create_invoice(date_ref=day)
        env.flush_all()
        cr.commit()
        created = time.perf_counter()
        q1 = queries()
        env.invalidate_all()
        moves = env["account.move"].search(
            [
                ("id", ">", max_move),
                ("move_type", "=", "out_invoice"),
                ("state", "=", "draft"),
                ("flex_subscription_id", "=", False),
            ]
        )
        q_search = queries() - q1
        post_started, q2 = time.perf_counter(), queries()
        moves.action_post()
        env.flush_all()
        cr.commit()
        done = time.perf_counter()
        q3 = queries()
        env.invalidate_all()
        moves = moves.browse(moves.ids)
        assert all(m.state == "posted" for m in moves), "OCA invoices not posted"
        return {
            "subs": subs,
            "invoices": len(moves),
            "create": created - started,
            "post": done - post_started,
            "total": (created - started) + (done - post_started),
            "queries": (q1 - q0) + (q3 - q2),
            "post_queries": q3 - q2,
            "search_queries": q_search,
            "amount": round(sum(moves.mapped("amount_total")), 2),
            "lines": sum(len(m.line_ids) for m in moves),
        }


def max_move_id(env):
    env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM account_move")
    return env.cr.fetchone()[0]


# -------------------------------------------------------------------------- report


def fmt_row(engine, run, r):
    ips = r["invoices"] / r["total"] if r["total"] else 0.0
    qps = r["queries"] / r["subs"] if r["subs"] else 0.0
    return (
        f"{engine:<5} {run:>4} {r['subs']:>6} {r['invoices']:>8} {r['create']:>9.2f} "
        f"{r['post']:>8.2f} {r['total']:>8.2f} {ips:>9.1f} {qps:>10.1f}"
    )


def spread(values, fmt="{:.2f}"):
    return (
        f"{fmt.format(statistics.median(values))} "
        f"[{fmt.format(min(values))}–{fmt.format(max(values))}]"
    )


def report(results):
    say("")
    say("== summary: median [min–max] over runs ==")
    say(
        f"{'engine':<6} {'s create':>22} {'s post':>22} {'s create+post':>22} "
        f"{'invoices/s':>22} {'queries/sub':>22}"
    )
    for engine in ("flex", "oca"):
        rows = results[engine]
        say(
            f"{engine:<6} "
            f"{spread([r['create'] for r in rows]):>22} "
            f"{spread([r['post'] for r in rows]):>22} "
            f"{spread([r['total'] for r in rows]):>22} "
            f"{spread([r['invoices'] / r['total'] for r in rows], '{:.1f}'):>22} "
            f"{spread([r['queries'] / r['subs'] for r in rows], '{:.1f}'):>22}"
        )
    pairs = list(zip(results["flex"], results["oca"], strict=True))
    thr = [(f["invoices"] / f["total"]) / (o["invoices"] / o["total"]) for f, o in pairs]
    qry = [(f["queries"] / f["subs"]) / (o["queries"] / o["subs"]) for f, o in pairs]
    say("")
    say("== ratios flex/OCA (per run, same database, same customers and lines) ==")
    say(
        f"throughput (invoices/s, create+post): {spread(thr)}   target >= 2.00  "
        f"{'OK' if statistics.median(thr) >= 2 else 'NOT MET'}"
    )
    say(
        f"queries per subscription:             {spread(qry)}   target <= 0.50  "
        f"{'OK' if statistics.median(qry) <= 0.5 else 'NOT MET'}"
    )


# ---------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="subscriptions (and contracts)")
    parser.add_argument("--runs", type=int, default=3, help="timed periods per engine")
    parser.add_argument("--db", default="bench_invoicing", help="database to (re)create")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="flex cron batch size (default: the cron's own default)",
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="keep an existing database of the same N instead of recreating it",
    )
    parser.add_argument(
        "--template",
        default=None,
        help="copy this installed (unseeded) database instead of installing; "
        "created from a fresh install when it does not exist",
    )
    parser.add_argument("--engines", default="flex,oca", help="comma-separated: flex,oca")
    parser.add_argument("--addons-path", default=None, help="extra addons paths")
    parser.add_argument(
        "--flex-dir",
        default=None,
        help="folder holding the subscription_flex to measure (default: this "
        "repo), e.g. a checkout of another commit for before/after figures",
    )
    parser.add_argument("--log-level", default="warn")
    args = parser.parse_args()
    engines = args.engines.split(",")

    configure_odoo(args)
    if args.reuse_db and db_exists(args.db):
        registry = odoo.modules.registry.Registry(args.db)
    else:
        drop_db(args.db)
        if args.template and db_exists(args.template):
            registry = copy_db(args.template, args.db)
        elif args.template:
            create_db(args.template)
            registry = copy_db(args.template, args.db)
        else:
            registry = create_db(args.db)
    seed_data(registry, args.n)
    batch_size = args.batch_size
    if batch_size is None:
        import inspect

        Sub = registry["flex.subscription"]
        batch_size = inspect.signature(Sub._cron_create_invoices).parameters["batch_size"].default

    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        cr.execute(
            "SELECT COALESCE(MAX(flex_period_start), %s) FROM account_move "
            "WHERE flex_billing_kind = 'recurring'",
            (FIRST_PERIOD - relativedelta(months=1),),
        )
        last_flex = cr.fetchone()[0]
        n_subs = env["flex.subscription"].search_count([])
    first = last_flex + relativedelta(months=1)
    if first == FIRST_PERIOD:
        # One committed period of history first: near-empty tables mislead the planner.
        say(f"seeding history: invoicing {first} with both engines (not timed)")
        if "flex" in engines:
            run_flex(registry, first, batch_size, with_timer=False)
        if "oca" in engines:
            run_oca(registry, first)
        first += relativedelta(months=1)

    say(
        f"\nN={n_subs} subscriptions/contracts x 3 lines (15% tax), flex batch size "
        f"{batch_size}, runs={args.runs}, database {args.db}"
    )
    say(
        f"{'eng':<5} {'run':>4} {'subs':>6} {'invoices':>8} {'s create':>9} {'s post':>8} "
        f"{'s total':>8} {'inv/s':>9} {'q/sub':>10}"
    )
    results = {engine: [] for engine in engines}
    for run in range(args.runs):
        day = first + relativedelta(months=run)
        # Alternate which engine goes first so table growth does not favour one.
        order = engines if run % 2 == 0 else list(reversed(engines))
        amounts = {}
        for engine in order:
            vacuum_analyze(args.db)
            if engine == "flex":
                result = run_flex(registry, day, batch_size)
            else:
                result = run_oca(registry, day)
            results[engine].append(result)
            amounts[engine] = (result["invoices"], result["amount"], result["lines"])
            say(
                fmt_row(engine, run + 1, result) + f"   ({day}, total {result['amount']:.2f}, "
                f"{result['queries']} queries, {result['post_queries']} in posting)"
            )
        if len(amounts) == 2 and amounts["flex"] != amounts["oca"]:
            say(f"  WARNING: engines disagree on (invoices, amount, journal items): {amounts}")
    if set(engines) == {"flex", "oca"}:
        report(results)


if __name__ == "__main__":
    main()
