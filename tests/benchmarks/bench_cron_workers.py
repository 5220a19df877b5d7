#!/usr/bin/env python3
"""Recurring invoicing (or scheduled changes) by 1 and by 2 Odoo servers (cron workers)
on one database.

Builds its own database (``subscription_flex``, no demo data): N customers with a monthly
subscription of three lines starting today, so one invoice each is due. Then, for 1 and
for 2 workers (in an order that alternates from run to run), on a fresh copy of it:
the invoicing job gets as many lanes as workers (``ir.cron._flex_set_lanes``), every other
job is switched off, the ``odoo-bin`` servers start (``--workers=0 --max-cron-threads=1
--no-http``, one per worker), the lanes are triggered once both have loaded the
database, and the clock runs until every subscription has its invoice (polled each
0.2 s). Each run checks every subscription was invoiced exactly once. Prints the times
and the speed-up of 2 workers over 1.

With ``--job changes``: the subscriptions start 10 to 13 days ago and their running
month is invoiced (posted) while seeding; each then has a seat change (3 -> 5) due
today, which the job *apply scheduled changes* applies, posting the invoice of the
prorated difference (one gapless sequence for both servers). The clock runs until every
change is applied; each run checks one posted invoice per change, each its own number.

    python3 tests/benchmarks/bench_cron_workers.py --n 4000 --runs 3 [--template bench_workers_tpl]
    python3 tests/benchmarks/bench_cron_workers.py --job changes --n 2000 --runs 1
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: faults

from _common import (  # noqa: E402
    copy_db,
    db_exists,
    install_addon,
    pg_admin,
    say,
    vacuum_analyze,
)
from bench_sepa import ODOO_ROOT, REPO, configure_odoo  # noqa: E402
from faults import cron_listening, schedule_seat_changes, seed_subscriptions  # noqa: E402

import odoo  # noqa: E402
from odoo import SUPERUSER_ID, Command, api, fields  # noqa: E402

JOBS = {
    "invoices": "subscription_flex.ir_cron_flex_create_invoices",
    "changes": "subscription_flex.ir_cron_flex_apply_changes",
}


def seed_changes(registry, n):
    """``n`` running subscriptions (3 seats at 7.00, no tax), their month invoiced, each
    with a seat change to 5 due today."""
    started = time.perf_counter()
    today = fields.Date.today()
    start = today - timedelta(days=10)
    while start.day > 28:  # a period of one calendar month, whatever the month
        start -= timedelta(days=1)
    sub_ids = seed_subscriptions(registry, "bench", n, start, 7.0, 3)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        subs = env["flex.subscription"].browse(sub_ids)
        for offset in range(0, n, 500):
            subs[offset : offset + 500]._create_recurring_invoices(today)
        schedule_seat_changes(env, subs, today + timedelta(days=1), due=today)
    say(f"seeded {n:,} subscriptions and changes in {time.perf_counter() - started:.0f} s")
    vacuum_analyze(registry.db_name)


def seed(registry, n):
    started = time.perf_counter()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        tax = env["account.tax"].create({"name": "Bench 15%", "amount": 15, "type_tax_use": "sale"})
        products = env["product.product"].create(
            [
                {
                    "name": name,
                    "type": "service",
                    "flex_is_subscription": True,
                    "lst_price": price,
                    "taxes_id": [Command.set(tax.ids)],
                }
                for name, price in (("Seat", 12.0), ("Storage", 4.5), ("Support", 30.0))
            ]
        )
        plan = env["flex.plan"].create({"name": "Monthly", "invoicing_mode": "post"})
        partners = env["res.partner"].create([{"name": f"Customer {i}"} for i in range(n)])
        today = fields.Date.context_today(env["flex.subscription"])
        for start in range(0, n, 1000):
            subs = env["flex.subscription"].create(
                [
                    {
                        "partner_id": partner.id,
                        "plan_id": plan.id,
                        "start_date": today,
                        "line_ids": [
                            Command.create(
                                {
                                    "product_id": product.id,
                                    "quantity": 1 + (i + k) % 4,
                                    "price_unit": product.lst_price,
                                    "price_overridden": True,
                                }
                            )
                            for k, product in enumerate(products)
                        ],
                    }
                    for i, partner in enumerate(partners[start : start + 1000])
                ]
            )
            subs.action_confirm()
    say(f"seeded {n:,} subscriptions in {time.perf_counter() - started:.0f} s")
    vacuum_analyze(registry.db_name)


def conf_file(directory, db):
    paths = [ODOO_ROOT / "addons", ODOO_ROOT / "odoo" / "addons", REPO]
    path = Path(directory) / "odoo.conf"
    path.write_text(
        "[options]\n"
        f"addons_path = {','.join(str(p) for p in paths if p.is_dir())}\n"
        f"db_name = {db}\n"
        "without_demo = all\n"
    )
    return path


def invoiced(registry):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), count(DISTINCT flex_subscription_id) FROM account_move"
            " WHERE move_type = 'out_invoice' AND flex_subscription_id IS NOT NULL"
        )
        return cr.fetchone()


def changed(registry):
    """(changes applied, their posted invoices with distinct numbers)."""
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), count(DISTINCT m.name) FROM flex_subscription_change c"
            " LEFT JOIN account_move m ON m.id = c.move_id AND m.state = 'posted'"
            " WHERE c.state = 'applied'"
        )
        return cr.fetchone()


DONE = {"invoices": invoiced, "changes": changed}


def pg_counters():
    """WAL written so far and checkpoints so far (the cluster's, for the run's report)."""
    (row,) = pg_admin(
        "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, checkpoints_timed + checkpoints_req,"
        " buffers_backend FROM pg_stat_bgwriter"
    )
    return row


def run(template, db, workers, n, directory, settle=0, kind="invoices"):
    copy_db(template, db)
    if settle:
        # Start every measurement alike: the copy's writes on disk, a checkpoint just
        # done, the machine idle for a moment.
        pg_admin("CHECKPOINT")
        os.sync()
        time.sleep(settle)
    registry = odoo.modules.registry.Registry(db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        job = env.ref(JOBS[kind])
        job.flex_lane_count = workers
        lanes = job | job.flex_lane_ids
        lanes.write({"nextcall": fields.Datetime.add(fields.Datetime.now(), days=1)})
        cr.execute("UPDATE ir_cron SET active = FALSE WHERE id != ALL(%s)", [lanes.ids])
        lane_ids = lanes.ids
    conf = conf_file(directory, db)
    logs = [Path(directory) / f"{db}-{workers}-{i}.log" for i in range(workers)]
    servers = [
        subprocess.Popen(  # noqa: S603 - Odoo itself
            [
                sys.executable,
                str(ODOO_ROOT / "odoo-bin"),
                "-c",
                str(conf),
                "-d",
                db,
                "--no-http",
                "--workers=0",
                "--max-cron-threads=1",
                "--log-level=info",
                f"--logfile={log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for log in logs
    ]
    try:
        while not all(log.exists() and "Registry loaded" in log.read_text() for log in logs):
            if any(server.poll() is not None for server in servers):
                raise RuntimeError(f"an Odoo server stopped: see {logs}")
            time.sleep(0.2)
        # Each server's cron thread listens for triggers: a NOTIFY sent before its LISTEN
        # is lost, and the thread would only start at its next poll, up to 60 s later
        # (that idle minute was in some earlier measurements).
        while cron_listening(registry, [server.pid for server in servers]) < workers:
            time.sleep(0.2)
        time.sleep(0.5)
        before = pg_counters()
        started = time.perf_counter()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            for lane in env["ir.cron"].browse(lane_ids):
                lane._trigger()
        while DONE[kind](registry)[0 if kind == "changes" else 1] < n:
            if any(server.poll() is not None for server in servers):
                raise RuntimeError(f"an Odoo server stopped: see {logs}")
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        after = pg_counters()
        time.sleep(2)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=60)
    count, distinct = DONE[kind](registry)
    if (count, distinct) != (n, n):
        raise RuntimeError(f"{kind}: {count} done, {distinct} distinct, expected {n}")
    odoo.sql_db.close_db(db)
    say(
        f"    WAL {(after[0] - before[0]) / 2**20:,.0f} MiB, {after[1] - before[1]} checkpoint(s),"
        f" {after[2] - before[2]:,} buffers written by backends"
    )
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", choices=sorted(JOBS), default="invoices")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="bench_workers")
    parser.add_argument("--template", default="bench_workers_tpl")
    parser.add_argument(
        "--settle",
        type=int,
        default=0,
        help="before each measurement: CHECKPOINT, sync, then wait this many seconds",
    )
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to measure, e.g. 1 (only one)"
    )
    args = parser.parse_args()
    configure_odoo(args.template, "warn")
    if not db_exists(args.template):
        seeder = seed_changes if args.job == "changes" else seed
        seeder(install_addon(args.template, "subscription_flex"), args.n)
    odoo.sql_db.close_db(args.template)
    counts = [int(count) for count in args.workers.split(",")]
    times = {count: [] for count in counts}
    with tempfile.TemporaryDirectory() as directory:
        for number in range(args.runs):
            order = counts if number % 2 == 0 else counts[::-1]
            for workers in order:
                seconds = run(
                    args.template, args.db, workers, args.n, directory, args.settle, args.job
                )
                times[workers].append(seconds)
                say(
                    f"run {number + 1}: {workers} worker(s), {args.job}: {args.n:,} in "
                    f"{seconds:6.1f} s ({args.n / seconds:5.1f}/s)"
                )
    say()
    for workers, values in times.items():
        say(
            f"{workers} worker(s): median {statistics.median(values):6.1f} s "
            f"(min {min(values):.1f}, max {max(values):.1f})"
        )
    if set(times) != {1, 2}:
        return
    ratios = [one / two for one, two in zip(times[1], times[2], strict=True)]
    say(
        f"speed-up of 2 workers over 1: median {statistics.median(ratios):.2f}x "
        f"(per run: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
