#!/usr/bin/env python3
"""Portal page timings: /my/subscriptions with 100 subscriptions, against Odoo's own
/my/invoices (100 invoices) measured in the same run, on a real ``odoo-bin``.

Creates a database with subscription_flex_portal (no demo data), one customer with a
portal user, ``--subs`` running monthly subscriptions of two lines each, each invoiced
for its first month (so /my/invoices lists as many invoices), then starts ``odoo-bin``
on 127.0.0.1, logs in as the portal user and GETs each page ``--requests`` times
(alternating, after ``--warmup`` untimed requests each), and prints median and p90 per
page and the ratios to the baseline.

    python3 tests/benchmarks/bench_portal.py --subs 100 --requests 60

See README.md beside this file.
"""

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ODOO_ROOT = Path(os.environ.get("ODOO_ROOT", "/opt/odoo"))
if str(ODOO_ROOT) not in sys.path and (ODOO_ROOT / "odoo" / "__init__.py").exists():
    sys.path.insert(0, str(ODOO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import db_exists, drop_db, say, vacuum_analyze  # noqa: E402

import odoo  # noqa: E402

LOGIN = PASSWORD = "bench_portal"
TARGET_MS = 150.0


def addons_path():
    paths = [ODOO_ROOT / "addons", ODOO_ROOT / "odoo" / "addons", REPO]
    return ",".join(str(p.resolve()) for p in paths if p.is_dir())


def configure_odoo(args):
    odoo.tools.config.parse_config(
        [
            f"--addons-path={addons_path()}",
            f"--database={args.db}",
            "--without-demo=all",
            f"--log-level={args.log_level}",
            "--max-cron-threads=0",
        ]
    )


def install_db(name):
    from odoo.service import db as db_service

    say(f"creating database {name} (installing subscription_flex_portal, no demo) ...")
    started = time.perf_counter()
    db_service._create_empty_database(name)
    odoo.tools.config["init"] = {"subscription_flex_portal": 1}
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


def seed(registry, n_subs):
    """A customer company, its portal user, ``n_subs`` subscriptions, one invoice each."""
    Command = odoo.fields.Command
    started = time.perf_counter()
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        company = env.company
        products = env["product.product"].create(
            [
                {"name": name, "type": "service", "flex_is_subscription": True, "lst_price": price}
                for name, price in (("Bench seat", 10.0), ("Bench support", 49.0))
            ]
        )
        plan = env["flex.plan"].create(
            {
                "name": "Bench monthly",
                "line_ids": [
                    Command.create(
                        {
                            "product_id": products[0].id,
                            "portal_editable": True,
                            "portal_max_quantity": 50,
                        }
                    ),
                    Command.create({"product_id": products[1].id, "optional": True}),
                ],
            }
        )
        customer = env["res.partner"].create({"name": "Bench Customer", "is_company": True})
        user = (
            env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": "Bench portal user",
                    "login": LOGIN,
                    "password": PASSWORD,
                    "company_id": company.id,
                    "company_ids": [Command.set(company.ids)],
                    "groups_id": [Command.set([env.ref("base.group_portal").id])],
                }
            )
        )
        user.partner_id.parent_id = customer
        start = date.today() - timedelta(days=10)
        subs = env["flex.subscription"].create(
            [
                {
                    "partner_id": customer.id,
                    "plan_id": plan.id,
                    "start_date": start,
                    "line_ids": [
                        Command.create({"product_id": products[0].id, "quantity": 1 + n % 7}),
                        Command.create({"product_id": products[1].id, "quantity": 1}),
                    ],
                }
                for n in range(n_subs)
            ]
        )
        subs.action_confirm()
        subs._create_recurring_invoices(date.today())
        invoices = env["account.move"].search_count(
            [("partner_id", "=", customer.id), ("state", "=", "posted")]
        )
        cr.commit()
    elapsed = time.perf_counter() - started
    say(f"seeded {n_subs} subscriptions, {invoices} invoices in {elapsed:.0f} s")


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``odoo-bin`` on 127.0.0.1 against the bench database, in its own process group."""

    def __init__(self, db, workers, log_path):
        self.db, self.workers, self.log_path = db, workers, log_path
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        cmd = [
            sys.executable,
            str(ODOO_ROOT / "odoo-bin"),
            f"--addons-path={addons_path()}",
            f"--database={self.db}",
            f"--db-filter=^{self.db}$",
            "--no-database-list",
            "--http-interface=127.0.0.1",
            f"--http-port={self.port}",
            f"--gevent-port={free_port()}",
            f"--workers={self.workers}",
            "--max-cron-threads=0",
            "--log-level=warn",
            f"--logfile={self.log_path}",
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"odoo-bin exited ({self.proc.returncode}), see {self.log_path}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/web/health", timeout=2).ok:
                    return self
            time.sleep(0.5)
        raise SystemExit(f"odoo-bin did not answer in 120 s, see {self.log_path}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def login(url):
    import re

    import requests

    session = requests.Session()
    page = session.get(f"{url}/web/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = session.post(
        f"{url}/web/login",
        data={"login": LOGIN, "password": PASSWORD, "csrf_token": token, "redirect": "/my"},
        timeout=30,
    )
    if "/web/login" in response.url:
        raise SystemExit("login failed")
    return session


def timed_get(session, url, marker):
    started = time.perf_counter()
    response = session.get(url, timeout=60, allow_redirects=False)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or marker not in response.text:
        raise SystemExit(f"GET {url}: {response.status_code}, marker {marker!r} missing")
    return elapsed


def p90(values):
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bench_portal", help="database to (re)create")
    parser.add_argument("--subs", type=int, default=100)
    parser.add_argument("--requests", type=int, default=60, help="timed GETs per page")
    parser.add_argument("--warmup", type=int, default=5, help="untimed GETs per page first")
    parser.add_argument("--workers", type=int, default=0, help="odoo-bin --workers")
    parser.add_argument("--reuse-db", action="store_true", help="keep an existing --db")
    parser.add_argument("--keep-db", action="store_true", help="do not drop --db at the end")
    parser.add_argument("--log-level", default="warn")
    args = parser.parse_args()
    configure_odoo(args)
    say(f"bench_portal: db={args.db} subs={args.subs} requests={args.requests} per page")
    if not (args.reuse_db and db_exists(args.db)):
        drop_db(args.db)
        registry = install_db(args.db)
        seed(registry, args.subs)
    odoo.sql_db.close_db(args.db)
    vacuum_analyze(args.db)
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{args.db}.log"
    pages = {
        "/my/subscriptions": ("/my/subscriptions", "o_flex_portal_row"),
        "/my/invoices (baseline)": ("/my/invoices", "o_portal_my_doc_table"),
        "/my (home)": ("/my", "o_portal_my_home"),
    }
    timings = {name: [] for name in pages}
    try:
        with Server(args.db, args.workers, log_path) as server:
            session = login(server.url)
            for _n in range(args.warmup):
                for path, marker in pages.values():
                    timed_get(session, server.url + path, marker)
            for _n in range(args.requests):
                for name, (path, marker) in pages.items():
                    timings[name].append(timed_get(session, server.url + path, marker))
    finally:
        if not args.keep_db:
            drop_db(args.db)
    say("")
    say(f"{'page':<26} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
    for name, values in timings.items():
        say(
            f"{name:<26} {statistics.median(values):>10.1f} {p90(values):>8.1f} {min(values):>8.1f}"
        )
    subs_median = statistics.median(timings["/my/subscriptions"])
    base_median = statistics.median(timings["/my/invoices (baseline)"])
    say("")
    say(
        f"ratio /my/subscriptions / /my/invoices: {subs_median / base_median:.2f} "
        f"(median {subs_median:.1f} ms vs {base_median:.1f} ms)"
    )
    verdict = "OK" if subs_median < TARGET_MS else "OVER TARGET"
    say(f"target: /my/subscriptions median < {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
