"""Two real Odoo servers (``odoo-bin`` processes, cron workers on, one database) invoice the
same 2,000 due subscriptions at the same time: each exactly once, none missing, and both
servers do part of the work.

Odoo runs one scheduled action in one worker at a time, so the invoicing job is given a
second lane (``ir.cron._flex_set_lanes(2)``, the "Parallel Workers" field of the job):
each server's cron worker takes one lane, and the subscriptions are shared by the job's
``FOR UPDATE SKIP LOCKED``. Every other scheduled action is switched off for the test
(nothing else runs, no mail leaves) and switched back on afterwards.

FLEX_WORKERS_SUBSCRIPTIONS (default 2,000) sets the size.
"""

import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from faults import seed_subscriptions

import odoo
from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry

SUBSCRIPTIONS = int(os.environ.get("FLEX_WORKERS_SUBSCRIPTIONS", "2000"))
REPO = Path(__file__).resolve().parents[1]
INVOICED = re.compile(
    r" (\d+) INFO \S+ odoo\.addons\.subscription_flex\.models\.flex_subscription: "
    r"Recurring invoicing: (\d+) subscriptions invoiced"
)


def _registry():
    return Registry(odoo.tools.config["db_name"])


def _odoo_bin():
    odoo_bin = os.environ.get("ODOO_BIN")
    if odoo_bin:
        return [sys.executable, odoo_bin]
    return [sys.executable, "-m", "odoo"]


def _switch_off_other_jobs(registry, job_ids):
    with registry.cursor() as cr:
        cr.execute(
            "UPDATE ir_cron SET active = FALSE WHERE active AND id != ALL(%s) RETURNING id",
            [job_ids],
        )
        return [row[0] for row in cr.fetchall()]


def _switch_on(registry, ids):
    with registry.cursor() as cr:
        cr.execute("UPDATE ir_cron SET active = TRUE WHERE id = ANY(%s)", [ids])


def _invoiced(registry, sub_ids):
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT count(*), count(DISTINCT flex_subscription_id), sum(amount_total),
                   bool_and(state = 'posted')
              FROM account_move
             WHERE flex_subscription_id = ANY(%s) AND move_type = 'out_invoice'
            """,
            [sub_ids],
        )
        return cr.fetchone()


def test_two_odoo_servers_invoice_each_subscription_exactly_once(tmp_path):
    registry = _registry()
    seeded_at = time.monotonic()
    today = fields.Date.today()  # the servers' day (UTC, as the cron's user has no tz)
    sub_ids = seed_subscriptions(registry, uuid.uuid4().hex[:8], SUBSCRIPTIONS, today, 7.0, 3)
    seeded = time.monotonic() - seeded_at
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        job = env.ref("subscription_flex.ir_cron_flex_create_invoices")
        job.flex_lane_count = 2
        lanes = job | job.flex_lane_ids
        assert len(lanes) == 2 and lanes.mapped("code") == [job.code] * 2
        # Not before both servers are up: they start when triggered below.
        lanes.write({"nextcall": fields.Datetime.add(fields.Datetime.now(), days=1)})
        job_ids = lanes.ids
    switched_off = _switch_off_other_jobs(registry, job_ids)
    servers, logs = [], []
    try:
        for number in (1, 2):
            log = tmp_path / f"server{number}.log"
            logs.append(log)
            servers.append(
                subprocess.Popen(  # noqa: S603 - Odoo itself, our configuration
                    [
                        *_odoo_bin(),
                        "-c",
                        odoo.tools.config.rcfile,
                        "-d",
                        registry.db_name,
                        "--no-http",
                        "--workers=0",
                        "--max-cron-threads=1",
                        "--log-level=info",
                        f"--logfile={log}",
                    ],
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        # Both servers have loaded the database (their cron worker listens from then on).
        deadline = time.monotonic() + 180
        while not all(
            log.exists() and "Registry loaded" in log.read_text(errors="replace") for log in logs
        ):
            assert time.monotonic() < deadline, "the Odoo servers did not start"
            assert all(server.poll() is None for server in servers), "an Odoo server stopped"
            time.sleep(0.5)
        time.sleep(2)
        started = time.monotonic()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            for lane in env["ir.cron"].browse(job_ids):
                lane._trigger()  # NOTIFY at commit: both servers wake up
        deadline = time.monotonic() + 1200
        while _invoiced(registry, sub_ids)[1] < SUBSCRIPTIONS:
            assert time.monotonic() < deadline, "not every subscription was invoiced"
            assert all(server.poll() is None for server in servers), "an Odoo server stopped"
            time.sleep(1)
        elapsed = time.monotonic() - started
        time.sleep(3)  # anything still running would show as a second invoice
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        _switch_on(registry, switched_off)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env.ref("subscription_flex.ir_cron_flex_create_invoices").flex_lane_count = 1
            cr.execute(
                "UPDATE flex_subscription SET state = 'closed' WHERE id = ANY(%s)", [sub_ids]
            )
    count, distinct, total, posted = _invoiced(registry, sub_ids)
    # One invoice each, 3 x 7.00 = 21.00, all posted.
    assert (count, distinct, total, posted) == (
        SUBSCRIPTIONS,
        SUBSCRIPTIONS,
        21.0 * SUBSCRIPTIONS,
        True,
    )
    # Both servers invoiced, and what they say they did adds up.
    by_pid = Counter()
    for log in logs:
        for pid, invoiced in INVOICED.findall(log.read_text(errors="replace")):
            by_pid[pid] += int(invoiced)
    assert len(by_pid) == 2, f"both servers must have invoiced: {dict(by_pid)}"
    assert sum(by_pid.values()) >= SUBSCRIPTIONS, dict(by_pid)
    print(
        f"\n{SUBSCRIPTIONS:,} subscriptions (seeded in {seeded:.0f} s) invoiced by two Odoo "
        f"servers in {elapsed:.1f} s: {dict(by_pid)} per server (pid)"
    )
