"""What the fault tests share: committed seed data, watching another process's
PostgreSQL session (Odoo names each connection ``odoo-<pid>``), and real Odoo servers
running one scheduled action side by side."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import odoo
from odoo import SUPERUSER_ID, Command, api, fields

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


def schedule_seat_changes(env, subs, day, quantity=5, due=None):
    """A change of each subscription's only line to ``quantity``, confirmed for ``day``
    (scheduled: ``day`` is after the environment's today); with ``due``, then moved to
    that day in SQL, as if its day had come (servers that run on the real date apply it
    there). Returns the changes."""
    changes = env["flex.subscription.change"].create(
        [
            {
                "subscription_id": sub.id,
                "timing": "date",
                "date": day,
                "line_ids": [
                    Command.create({"subscription_line_id": sub.line_ids.id, "quantity": quantity})
                ],
            }
            for sub in subs
        ]
    )
    changes.action_confirm()
    assert set(changes.mapped("state")) == {"scheduled"}
    assert set(changes.mapped("effective_date")) == {day}
    if due:
        env.flush_all()
        env.cr.execute(
            "UPDATE flex_subscription_change SET date = %s, effective_date = %s WHERE id = ANY(%s)",
            [due, due, changes.ids],
        )
        env.invalidate_all()
    return changes


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


def cron_loop_script(call, today):
    """Source of an Odoo script (for :func:`start_script`) that runs ``call``, a Python
    expression on ``env`` returning the records it did, as Odoo's cron runner does: one
    call in a transaction, commit, again, until it does nothing; ``env`` has
    ``flex_today`` = ``today``. It prints ``batch <n>`` after each commit, ``done`` at the
    end."""
    context = f'{{"flex_today": date.fromisoformat("{today.isoformat()}")}}'
    return textwrap.dedent(
        f"""
        import sys
        from datetime import date
        import odoo
        from odoo import SUPERUSER_ID, api
        from odoo.modules.registry import Registry

        odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2], "--log-level=warn"])
        registry = Registry(sys.argv[2])
        while True:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {context})
                done = {call}
                if not done:
                    break
                print("batch", len(done), flush=True)
        print("done", flush=True)
        """
    )


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


def _start_server(registry, log):
    return subprocess.Popen(  # noqa: S603 - Odoo itself, our configuration
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


def _stop(servers):
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _set_lanes(registry, xmlid, count):
    """Give the job ``xmlid`` ``count`` lanes; returns the ids of the job and its lanes."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        job = env.ref(xmlid)
        job.flex_lane_count = count
        lanes = job | job.flex_lane_ids
        assert len(lanes) == count and lanes.mapped("code") == [job.code] * count
        # Not before the servers are up: they start when triggered.
        lanes.write({"nextcall": fields.Datetime.add(fields.Datetime.now(), days=1)})
        return lanes.ids


@contextmanager
def cron_servers(registry, log_dir, xmlid, count=2):
    """``count`` real Odoo servers (``odoo-bin``, one cron worker each, no HTTP) on the
    test database run the job ``xmlid``, given ``count`` lanes, at the same time: every
    other scheduled action is switched off (nothing else runs, no mail leaves), the job's
    lanes are triggered once both servers have loaded the database. Yields the server
    processes and their log files; on exit the servers are stopped, the other jobs
    switched back on and the job goes back to one lane."""
    job_ids = _set_lanes(registry, xmlid, count)
    switched_off = _switch_off_other_jobs(registry, job_ids)
    servers, logs = [], [Path(log_dir) / f"server{number}.log" for number in range(count)]
    try:
        servers.extend(_start_server(registry, log) for log in logs)
        # Every server has loaded the database...
        wait_for(
            lambda: all(
                log.exists() and "Registry loaded" in log.read_text(errors="replace")
                for log in logs
            ),
            servers,
            180,
            "the Odoo servers did not start",
        )
        # ...and its cron thread listens: a NOTIFY sent before its LISTEN is lost, and the
        # thread would only look at its next poll, a minute later.
        wait_for(
            lambda: cron_listening(registry, [server.pid for server in servers]) == count,
            servers,
            60,
            "the Odoo servers' cron threads do not listen",
        )
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            for lane in env["ir.cron"].browse(job_ids):
                lane._trigger()  # NOTIFY at commit: the servers wake up
        yield servers, logs
    finally:
        _stop(servers)
        _switch_on(registry, switched_off)
        with registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {}).ref(xmlid).flex_lane_count = 1


def run_on_servers(registry, log_dir, xmlid, finished, timeout=1200):
    """Run the job ``xmlid`` on two servers (:func:`cron_servers`) until ``finished()``
    holds, then 3 seconds more: anything still running would show as done twice. Returns
    the servers' log files and the seconds from the trigger to ``finished()``."""
    with cron_servers(registry, log_dir, xmlid) as (servers, logs):
        started = time.monotonic()
        wait_for(finished, servers, timeout, f"{xmlid} did not finish in {timeout} s")
        elapsed = time.monotonic() - started
        time.sleep(3)
    return logs, elapsed


def wait_for(condition, servers, timeout, message):
    """Poll ``condition`` every half second until it holds; fail after ``timeout``
    seconds, or as soon as one of ``servers`` has stopped."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        assert all(server.poll() is None for server in servers), "an Odoo server stopped"
        time.sleep(0.5)


def logged_by_pid(logs, logger, message):
    """Sum per process id of the number that ``message`` (a regular expression with one
    group, a count) captures in the INFO lines of ``logger`` in the Odoo ``logs``."""
    pattern = re.compile(rf" (\d+) INFO \S+ {re.escape(logger)}: {message}")
    by_pid = Counter()
    for log in logs:
        for pid, number in pattern.findall(log.read_text(errors="replace")):
            by_pid[pid] += int(number)
    return by_pid


def cron_listening(registry, pids):
    """How many of the Odoo servers ``pids`` have a cron thread listening for triggers:
    its session on the ``postgres`` database, idle after ``LISTEN cron_trigger`` and its
    commit (a server has no other session there)."""
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            " WHERE datname = 'postgres' AND state = 'idle'"
            " AND query IN ('LISTEN cron_trigger', 'COMMIT') AND application_name = ANY(%s)",
            [[f"odoo-{pid}" for pid in pids]],
        )
        return cr.fetchone()[0]
