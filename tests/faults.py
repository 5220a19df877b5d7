"""What the fault tests share: committed seed data and watching another process's
PostgreSQL session (Odoo names each connection ``odoo-<pid>``)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import odoo
from odoo import SUPERUSER_ID, Command, api

REPO = Path(__file__).resolve().parents[1]


def german_iban(number):
    """A valid German IBAN for account number ``number`` (ISO 7064 check digits)."""
    bban = f"37040044{number:010d}"
    check = 98 - int(f"{bban}131400") % 97  # D=13, E=14, then "00"
    return f"DE{check:02d}{bban}"


def seed_subscriptions(registry, tag, count, start, price, quantity):
    """``count`` committed monthly subscriptions (one untaxed line) starting ``start``,
    each with its own customer; returns their ids."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        product = env["product.product"].create(
            {
                "name": f"Seat {tag}",
                "type": "service",
                "flex_is_subscription": True,
                "lst_price": price,
                "taxes_id": [Command.clear()],
            }
        )
        plan = env["flex.plan"].create({"name": f"Plan {tag}", "invoicing_mode": "post"})
        partners = env["res.partner"].create(
            [{"name": f"Customer {tag} {i}"} for i in range(count)]
        )
        subs = env["flex.subscription"].create(
            [
                {
                    "partner_id": partner.id,
                    "plan_id": plan.id,
                    "start_date": start,
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "quantity": quantity,
                                "price_unit": price,
                                "price_overridden": True,
                            }
                        )
                    ],
                }
                for partner in partners
            ]
        )
        subs.action_confirm()
        return subs.ids


def session_in_transaction(registry, pid):
    """Whether the PostgreSQL session of process ``pid`` is inside a transaction."""
    with registry.cursor() as cr:
        cr.execute(
            "SELECT bool_or(xact_start IS NOT NULL) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [f"odoo-{pid}"],
        )
        return bool(cr.fetchone()[0])


def session_gone(registry, pid, timeout=30):
    """Wait until PostgreSQL has ended (and so rolled back) the session of ``pid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with registry.cursor() as cr:
            cr.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [f"odoo-{pid}"],
            )
            if not cr.fetchone()[0]:
                return True
        time.sleep(0.1)
    return False


def start_script(registry, path, *args):
    """Run the Odoo script ``path`` in a second Python process on the test database: its
    arguments are Odoo's configuration file, the database, then ``args``."""
    return subprocess.Popen(  # noqa: S603 - our own script, our own interpreter
        [sys.executable, str(path), odoo.tools.config.rcfile, registry.db_name, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_in_transaction(registry, process, wait=0.0):
    """SIGKILL ``process`` while its PostgreSQL session is inside a transaction, ``wait``
    seconds after it is seen there; then wait until PostgreSQL has ended (rolled back) the
    session. Fails when the work ended before it could be killed."""
    try:
        deadline = time.monotonic() + 30
        while not session_in_transaction(registry, process.pid):
            assert process.poll() is None, ("the process ended", process.stderr.read())
            assert time.monotonic() < deadline, "no transaction to kill"
            time.sleep(0.01)
        time.sleep(wait)
        assert process.poll() is None, "the work ended before it could be killed"
        assert session_in_transaction(registry, process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert session_gone(registry, process.pid)
