#!/usr/bin/env python3
"""Usage billing benchmark: ingestion (Python batch and HTTP) and rating of a month.

Creates a fresh database with subscription_flex, N subscriptions with three metered
lines (API calls: sum, graduated tiers after an included quantity; storage: max, per
unit with a minimum charge; active users: unique, volume tiers) and one committed period
of invoicing history, then:

1. ingests ``--events`` events through ``flex.usage._ingest`` in batches (commit per
   batch), and re-sends a few batches (all duplicates);
2. ingests ``--http-events`` events through ``POST /flex/usage/v1/events`` against a
   real ``odoo-bin`` subprocess on 127.0.0.1, for each ``--http-workers`` setting;
3. rates the month: the SQL aggregation alone, then the whole invoicing cron on a copy
   of the database, and checks the amounts against an independent recomputation.

    python3 tests/benchmarks/bench_usage.py --subs 1000 --events 1000000

See README.md beside this file for what is measured and why.
"""

import argparse
import contextlib
import functools
import json
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ODOO_ROOT = Path(os.environ.get("ODOO_ROOT", "/opt/odoo"))
if str(ODOO_ROOT) not in sys.path and (ODOO_ROOT / "odoo" / "__init__.py").exists():
    sys.path.insert(0, str(ODOO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import copy_db, db_exists, drop_db, say, vacuum_analyze  # noqa: E402

import odoo  # noqa: E402

_logger = logging.getLogger("bench_usage")

# The rated month: subscriptions start one month before it; invoicing on its end.
HISTORY_DAY = date(2026, 10, 1)  # first invoicing (Sep and Oct base fees), not timed
RATED_START = date(2026, 10, 1)
RATED_END = date(2026, 11, 1)  # invoicing day: Nov base fee + October usage
SUB_START = date(2026, 9, 1)
# HTTP events go after the rated window (November, before "now"): they are ingested for
# real but not rated, so the rating covers exactly the --events of the batch stage.
HTTP_START = datetime(2026, 11, 1)
HTTP_SPAN_SECONDS = 20 * 86400

TAX_PERCENT = 15.0
BASE_PRODUCT = ("Bench platform fee", "BENCH-BASE", 29.0)
# Metered products and their price (one version, from the subscriptions' start).
METRICS = {
    "BENCH-API": {
        "name": "Bench API calls",
        "aggregation": "sum",
        "unit": "calls",
        "price": {
            "pricing_model": "graduated",
            "price_unit": 0.0,
            "included_quantity": 10000.0,
            "minimum_charge": 0.0,
            # (up_to or None, unit price, flat fee)
            "tiers": [(20000.0, 0.002, 0.0), (50000.0, 0.0015, 5.0), (None, 0.001, 0.0)],
        },
    },
    "BENCH-GB": {
        "name": "Bench storage",
        "aggregation": "max",
        "unit": "GB",
        "price": {
            "pricing_model": "per_unit",
            "price_unit": 0.23,
            "included_quantity": 50.0,
            "minimum_charge": 5.0,
            "tiers": [],
        },
    },
    "BENCH-USERS": {
        "name": "Bench active users",
        "aggregation": "unique",
        "unit": "users",
        "price": {
            "pricing_model": "volume",
            "price_unit": 0.0,
            "included_quantity": 2.0,
            "minimum_charge": 0.0,
            "tiers": [(10.0, 4.0, 0.0), (50.0, 3.5, 0.0), (None, 3.0, 10.0)],
        },
    },
}


# --------------------------------------------------------------------------- setup


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

    say(f"creating database {name} (installing subscription_flex, no demo) ...")
    started = time.perf_counter()
    db_service._create_empty_database(name)
    odoo.tools.config["init"] = {"subscription_flex": 1}
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


def sale_tax(env):
    Tax = env["account.tax"]
    tax = Tax.search(
        [
            *Tax._check_company_domain(env.company),
            ("type_tax_use", "=", "sale"),
            ("amount_type", "=", "percent"),
            ("amount", "=", TAX_PERCENT),
            ("price_include", "=", False),
        ],
        limit=1,
    )
    return tax or Tax.create(
        {
            "name": f"Bench {TAX_PERCENT:g}%",
            "amount": TAX_PERCENT,
            "amount_type": "percent",
            "type_tax_use": "sale",
            "company_id": env.company.id,
        }
    )


def seed(registry, n_subs):
    """Products, plan, prices, N customers and confirmed subscriptions, then one committed
    invoicing (September and October base fees) so the tables hold some history."""
    Command = odoo.fields.Command
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"tracking_disable": True})
        if env["flex.subscription"].search_count([]):
            say("data already seeded: reusing it")
            return
        started = time.perf_counter()
        tax = sale_tax(env)
        common = {
            "type": "service",
            "flex_is_subscription": True,
            "taxes_id": [Command.set(tax.ids)],
        }
        base = env["product.product"].create(
            {
                **common,
                "name": BASE_PRODUCT[0],
                "default_code": BASE_PRODUCT[1],
                "list_price": BASE_PRODUCT[2],
            }
        )
        metered = env["product.product"].create(
            [
                {
                    **common,
                    "name": spec["name"],
                    "default_code": code,
                    "list_price": 0.0,
                    "flex_metered": True,
                    "flex_aggregation": spec["aggregation"],
                    "flex_unit_label": spec["unit"],
                }
                for code, spec in METRICS.items()
            ]
        )
        plan = env["flex.plan"].create(
            {
                "name": "Bench usage monthly",
                "billing_interval": 1,
                "billing_unit": "month",
                "invoicing_timing": "advance",
                "invoicing_mode": "post",
            }
        )
        currency = env.company.currency_id
        price_common = {"plan_id": plan.id, "currency_id": currency.id, "date_start": SUB_START}
        env["flex.price"].create(
            [{**price_common, "product_id": base.id, "price_unit": BASE_PRODUCT[2]}]
            + [
                {
                    **price_common,
                    "product_id": product.id,
                    "pricing_model": METRICS[product.default_code]["price"]["pricing_model"],
                    "price_unit": METRICS[product.default_code]["price"]["price_unit"],
                    "included_quantity": METRICS[product.default_code]["price"][
                        "included_quantity"
                    ],
                    "minimum_charge": METRICS[product.default_code]["price"]["minimum_charge"],
                    "tier_ids": [
                        Command.create(
                            {
                                "up_to": up_to or 0.0,
                                "open_ended": up_to is None,
                                "unit_price": unit_price,
                                "flat_fee": flat_fee,
                            }
                        )
                        for up_to, unit_price, flat_fee in METRICS[product.default_code]["price"][
                            "tiers"
                        ]
                    ],
                }
                for product in metered
            ]
        )
        partners = env["res.partner"].create(
            [
                {"name": f"Usage Customer {i:05d}", "email": f"usage{i}@example.com"}
                for i in range(n_subs)
            ]
        )
        for chunk in range(0, n_subs, 250):
            subs = env["flex.subscription"].create(
                [
                    {
                        "partner_id": partners[i].id,
                        "plan_id": plan.id,
                        "start_date": SUB_START,
                        "line_ids": [Command.create({"product_id": base.id, "quantity": 1})]
                        + [
                            Command.create({"product_id": product.id, "quantity": 1})
                            for product in metered
                        ],
                    }
                    for i in range(chunk, min(chunk + 250, n_subs))
                ]
            )
            subs.action_confirm()
            env.flush_all()
            cr.commit()
            env.invalidate_all()
        say(f"seeded {n_subs} subscriptions in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        invoices = run_invoicing(registry, HISTORY_DAY)["invoices"]
        say(
            f"history: {invoices} invoices for {HISTORY_DAY} (Sep + Oct base fees) in "
            f"{time.perf_counter() - started:.0f} s"
        )


def subscription_refs(registry):
    with registry.cursor() as cr:
        cr.execute("SELECT id, name FROM flex_subscription ORDER BY id")
        return cr.fetchall()


# ---------------------------------------------------------------------- event data


class EventFactory:
    """Deterministic events: subscription, product, quantity, time, key, unique value.

    ~70% API calls (1–100 calls each), ~10% storage readings (0–400 GB, two decimals),
    ~20% active-user pings (unique value out of a pool of 3–80 users per subscription).
    Subscriptions get uneven volumes (weights 1–4)."""

    def __init__(self, subs, seed, start, span_seconds, prefix):
        self.subs = [name for _id, name in subs]
        self.rng = random.Random(seed)
        self.start = start
        self.span = span_seconds
        self.prefix = prefix
        self.count = 0
        self.weights = [1 + (i * 7919) % 4 for i in range(len(self.subs))]
        self.cum = list(_accumulate(self.weights))
        self.pools = [3 + (i * 31) % 78 for i in range(len(self.subs))]

    def batch(self, size):
        rng, events = self.rng, []
        choices = rng.choices
        sub_idx = choices(range(len(self.subs)), cum_weights=self.cum, k=size)
        for i in sub_idx:
            r = rng.random()
            when = self.start + timedelta(seconds=rng.randrange(self.span))
            event = {
                "subscription": self.subs[i],
                "time": when.isoformat() + "Z",
                "key": f"{self.prefix}{self.count}",
            }
            if r < 0.7:
                event["product"] = "BENCH-API"
                event["quantity"] = rng.randint(1, 100)
            elif r < 0.8:
                event["product"] = "BENCH-GB"
                event["quantity"] = round(rng.uniform(0, 400), 2)
            else:
                event["product"] = "BENCH-USERS"
                event["quantity"] = 1
                event["unique_value"] = f"user-{rng.randrange(self.pools[i])}"
            self.count += 1
            events.append(event)
        return events


def _accumulate(values):
    total = 0
    for value in values:
        total += value
        yield total


# ---------------------------------------------------------------------- measurement


def queries():
    return odoo.sql_db.sql_counter


def spread(values, fmt="{:,.0f}"):
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return (
        f"{fmt.format(statistics.median(values))} "
        f"[{fmt.format(min(values))}–{fmt.format(max(values))}]"
    )


def ingest_batches(registry, factory, total, batch_size, keep):
    """``_ingest`` + flush + COMMIT per batch, timed together; returns the stats and the
    batches listed in ``keep`` (indexes) for the duplicate re-send."""
    kept, rates, secs, qcount = {}, [], [], []
    accepted = 0
    n_batches = (total + batch_size - 1) // batch_size
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        Usage = env["flex.usage"]
        for b in range(n_batches):
            events = factory.batch(min(batch_size, total - b * batch_size))
            q0, started = queries(), time.perf_counter()
            result = Usage._ingest(events, source="batch")
            env.flush_all()
            cr.commit()
            elapsed = time.perf_counter() - started
            env.invalidate_all()
            if result["accepted"] != len(events):
                raise SystemExit(
                    f"batch {b}: {result['accepted']} accepted of {len(events)} "
                    f"({result['duplicates']} duplicates, {result['rejected']} rejected): "
                    f"{[r for r in result['results'] if r['status'] == 'rejected'][:3]}"
                )
            accepted += result["accepted"]
            secs.append(elapsed)
            rates.append(len(events) / elapsed)
            qcount.append(queries() - q0)
            if b in keep:
                kept[b] = events
            if (b + 1) % max(1, n_batches // 10) == 0:
                say(
                    f"  {accepted:>9,} events, last batch {rates[-1]:,.0f} ev/s, "
                    f"{qcount[-1]} queries"
                )
    return {
        "accepted": accepted,
        "seconds": sum(secs),
        "rates": rates,
        "queries": qcount,
    }, kept


def resend(registry, batches):
    rates = []
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        for events in batches:
            started = time.perf_counter()
            result = env["flex.usage"]._ingest(events, source="batch")
            env.flush_all()
            cr.commit()
            elapsed = time.perf_counter() - started
            env.invalidate_all()
            if result["duplicates"] != len(events):
                raise SystemExit(f"re-send: {result['duplicates']} duplicates of {len(events)}")
            rates.append(len(events) / elapsed)
    return rates


# ---------------------------------------------------------------------------- HTTP


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_key(registry):
    """A user with Subscriptions / User in the main company, and an API key of it."""
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        Users = env["res.users"].with_context(no_reset_password=True)
        user = Users.search([("login", "=", "bench_usage_api")])
        if not user:
            user = Users.create(
                {
                    "name": "Bench usage feed",
                    "login": "bench_usage_api",
                    "company_id": env.company.id,
                    "company_ids": [odoo.fields.Command.set(env.company.ids)],
                    "groups_id": [
                        odoo.fields.Command.set(
                            [
                                env.ref("base.group_user").id,
                                env.ref("subscription_flex.group_flex_user").id,
                            ]
                        )
                    ],
                }
            )
        key = (
            env["res.users.apikeys"]
            .with_user(user)
            ._generate(None, "bench usage", datetime.now() + timedelta(days=1))
        )
        cr.commit()
        return key


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


def http_ingest(url, key, factory, total, batch_size, threads):
    """``total`` events in requests of ``batch_size`` from ``threads`` client threads
    (bodies built before the clock starts). Returns (seconds, latencies, accepted)."""
    import requests

    bodies = [
        json.dumps({"events": factory.batch(min(batch_size, total - start))}).encode()
        for start in range(0, total, batch_size)
    ]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies, accepted, errors = [], [0], []
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def worker():
        with requests.Session() as session:
            while True:
                with lock:
                    if not queue or errors:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                response = session.post(
                    f"{url}/flex/usage/v1/events", data=body, headers=headers, timeout=120
                )
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:300]}")
                        return
                    accepted[0] += response.json()["accepted"]

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(f"HTTP error: {errors[0]}")
    return seconds, latencies, accepted[0]


# -------------------------------------------------------------------------- rating


class MethodTimer:
    """Wraps ``model._method`` on the registry class: time and queries of every call,
    pending writes flushed before the clock starts and before it stops."""

    def __init__(self, registry, model, method):
        self.cls = registry[model]
        self.method = method
        self.original = getattr(self.cls, method)
        self.seconds, self.calls, self.queries = 0.0, 0, 0

    def __enter__(self):
        timer, original = self, self.original

        @functools.wraps(original)
        def timed(record_self, *args, **kwargs):
            record_self.env.flush_all()
            started, q0 = time.perf_counter(), queries()
            try:
                return original(record_self, *args, **kwargs)
            finally:
                record_self.env.flush_all()
                timer.seconds += time.perf_counter() - started
                timer.queries += queries() - q0
                timer.calls += 1

        setattr(self.cls, self.method, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.cls, self.method, self.original)


def run_invoicing(registry, day, batch_size=None):
    """The invoicing cron as Odoo's runner drives it: a batch, flush, COMMIT, again."""
    timers = [
        MethodTimer(registry, "flex.subscription", "_aggregate_usage"),
        MethodTimer(registry, "flex.subscription", "_mark_usage_invoiced"),
        MethodTimer(registry, "account.move", "_flex_finalize"),
    ]
    with registry.cursor() as cr, contextlib.ExitStack() as stack:
        for timer in timers:
            stack.enter_context(timer)
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {"flex_today": day})
        Sub = env["flex.subscription"]
        kwargs = {"batch_size": batch_size} if batch_size else {}
        cr.execute("SELECT COALESCE(MAX(id), 0) FROM account_move")
        max_move = cr.fetchone()[0]
        subs, q0, started = 0, queries(), time.perf_counter()
        while True:
            done = Sub._cron_create_invoices(**kwargs)
            env.flush_all()
            cr.commit()
            env.invalidate_all()
            if not done:
                break
            subs += len(done)
        total = time.perf_counter() - started
        total_queries = queries() - q0
        cr.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'posted') FROM account_move "
            "WHERE id > %s AND flex_subscription_id IS NOT NULL",
            (max_move,),
        )
        invoices, posted = cr.fetchone()
        cr.execute(
            "SELECT count(*) FROM account_move_line l JOIN account_move m ON m.id = l.move_id "
            "WHERE m.id > %s AND l.flex_line_kind = 'usage'",
            (max_move,),
        )
        usage_lines = cr.fetchone()[0]
    agg, mark, post = timers
    return {
        "subs": subs,
        "invoices": invoices,
        "posted": posted,
        "usage_lines": usage_lines,
        "total": total,
        "queries": total_queries,
        "aggregate": agg.seconds,
        "aggregate_calls": agg.calls,
        "mark": mark.seconds,
        "post": post.seconds,
        "max_move": max_move,
    }


def windows_of(registry):
    with registry.cursor() as cr:
        cr.execute("SELECT id FROM flex_subscription ORDER BY id")
        return {sub_id: (sub_id, RATED_START, RATED_END) for (sub_id,) in cr.fetchall()}


def time_aggregation(registry, runs):
    """``_aggregate_usage`` over the rated window of every subscription, in one call."""
    windows = windows_of(registry)
    results = []
    for _run in range(runs):
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            started = time.perf_counter()
            aggregates = env["flex.subscription"]._aggregate_usage(windows)
            results.append(time.perf_counter() - started)
            cr.rollback()
    events = sum(int(v["count"]) for v in aggregates.values())
    return results, len(aggregates), events


# ---------------------------------------------------------------------- correctness


def d(value):
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def expected_amount(quantity, price):
    """Amount of a period, recomputed here from the price definition (not core.rating)."""
    billable = max(quantity - d(price["included_quantity"]), Decimal(0))
    model = price["pricing_model"]
    if model == "per_unit":
        total = billable * d(price["price_unit"])
    elif model == "graduated":
        total, lower = Decimal(0), Decimal(0)
        for up_to, unit_price, flat_fee in price["tiers"]:
            if billable <= lower:
                break
            upper = billable if up_to is None else min(billable, d(up_to))
            total += (upper - lower) * d(unit_price) + d(flat_fee)
            if up_to is None:
                break
            lower = d(up_to)
    elif model == "volume":
        total = Decimal(0)
        if billable:
            for up_to, unit_price, flat_fee in price["tiers"]:
                if up_to is None or billable <= d(up_to):
                    total = billable * d(unit_price) + d(flat_fee)
                    break
    else:  # package
        packages = (billable / d(price["package_size"])).to_integral_value(ROUND_CEILING)
        total = packages * d(price["price_unit"])
    total = max(total, d(price["minimum_charge"]))
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def aggregate_python(rows, aggregation):
    """``rows``: (event_time, id, quantity, unique_value) of one metric and period."""
    if not rows:
        return None
    if aggregation == "sum":
        return sum((d(q) for _t, _i, q, _u in rows), Decimal(0))
    if aggregation == "max":
        return max(d(q) for _t, _i, q, _u in rows)
    if aggregation == "count":
        return Decimal(len(rows))
    if aggregation == "unique":
        return Decimal(len({u for _t, _i, _q, u in rows if u is not None}))
    return d(max(rows)[2])  # last


def invoiced_usage(cr, max_move, sub_ids):
    """``{(sub_id, product code): (price_subtotal, event count)}`` of the rated invoices."""
    cr.execute(
        """
        SELECT m.flex_subscription_id, p.default_code, l.price_subtotal,
               coalesce(linked.events, 0)
          FROM account_move_line l
          JOIN account_move m ON m.id = l.move_id
          JOIN product_product p ON p.id = l.product_id
          -- billed_line_ref has no index on purpose (HOT updates): count in one pass.
          LEFT JOIN (SELECT billed_line_ref, count(*) AS events FROM flex_usage
                      WHERE subscription_id = ANY(%s) GROUP BY billed_line_ref) linked
                 ON linked.billed_line_ref = l.id
         WHERE m.id > %s AND l.flex_line_kind = 'usage' AND m.flex_subscription_id = ANY(%s)
        """,
        (list(sub_ids), max_move, list(sub_ids)),
    )
    return {(sub, code): (d(amount), count) for sub, code, amount, count in cr.fetchall()}


def check_sample(registry, max_move, sample):
    """Raw events of ``sample`` subscriptions read back with SQL, aggregated and rated in
    Python, against the invoice lines, to the cent."""
    lines_ok = True
    with registry.cursor() as cr:
        invoiced = invoiced_usage(cr, max_move, sample)
        for sub_id in sample:
            cr.execute(
                """
                SELECT p.default_code, u.event_time, u.id, u.quantity, u.unique_value
                  FROM flex_usage u JOIN product_product p ON p.id = u.product_id
                 WHERE u.subscription_id = %s AND u.event_time >= %s AND u.event_time < %s
                """,
                (sub_id, datetime.combine(RATED_START, datetime.min.time()), RATED_END),
            )
            by_code = defaultdict(list)
            for code, when, ident, quantity, unique in cr.fetchall():
                by_code[code].append((when, ident, quantity, unique))
            for code, spec in METRICS.items():
                quantity = aggregate_python(by_code[code], spec["aggregation"])
                expected = expected_amount(quantity or Decimal(0), spec["price"])
                amount, billed = invoiced.get((sub_id, code), (None, 0))
                ok = amount == expected and billed == len(by_code[code])
                lines_ok &= ok
                say(
                    f"  sub {sub_id:>5} {code:<12} {len(by_code[code]):>5} events "
                    f"{spec['aggregation']:<6} = {quantity!s:>10}  expected {expected!s:>9}  "
                    f"invoiced {amount!s:>9} ({billed} events linked)  "
                    f"{'OK' if ok else 'MISMATCH'}"
                )
    return lines_ok


def check_all(registry, max_move):
    """Every subscription: an independent SQL aggregation (not ``_aggregate_usage``), rated
    in Python, against the invoice lines."""
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT u.subscription_id, p.default_code, sum(u.quantity), max(u.quantity),
                   count(DISTINCT u.unique_value)
              FROM flex_usage u JOIN product_product p ON p.id = u.product_id
             WHERE u.event_time >= %s AND u.event_time < %s
             GROUP BY 1, 2
            """,
            (RATED_START, RATED_END),
        )
        quantities = {
            (sub, code): {"sum": d(total), "max": d(maximum), "unique": Decimal(unique)}
            for sub, code, total, maximum, unique in cr.fetchall()
        }
        cr.execute("SELECT id FROM flex_subscription")
        sub_ids = [row[0] for row in cr.fetchall()]
        invoiced = invoiced_usage(cr, max_move, sub_ids)
    mismatches, total = [], Decimal(0)
    for sub_id in sub_ids:
        for code, spec in METRICS.items():
            values = quantities.get((sub_id, code))
            quantity = values[spec["aggregation"]] if values else Decimal(0)
            expected = expected_amount(quantity, spec["price"])
            amount = invoiced.get((sub_id, code), (None, 0))[0]
            total += expected
            if amount != expected:
                mismatches.append((sub_id, code, expected, amount))
    return mismatches, total, len(sub_ids)


# ---------------------------------------------------------------------------- main


def stage_ingest(args, registry, subs, summary):
    """1. ``_ingest`` in batches, then re-sending some of them."""
    say("")
    say(f"== 1. _ingest: {args.events:,} events, {args.batch_size:,} per call + COMMIT")
    factory = EventFactory(
        subs,
        args.seed,
        datetime.combine(RATED_START, datetime.min.time()),
        int((RATED_END - RATED_START).total_seconds()),
        "b-",
    )
    n_batches = (args.events + args.batch_size - 1) // args.batch_size
    keep = sorted({0, n_batches // 2, n_batches - 1})[: args.resend]
    stats, kept = ingest_batches(registry, factory, args.events, args.batch_size, keep)
    rate = stats["accepted"] / stats["seconds"]
    say(
        f"ingested {stats['accepted']:,} events in {stats['seconds']:.1f} s: "
        f"{rate:,.0f} events/s overall; per batch {spread(stats['rates'])} ev/s; "
        f"{spread(stats['queries'])} queries/batch   bar >= 10,000 ev/s "
        f"{'OK' if rate >= 10000 else 'NOT MET'}"
    )
    summary.append(
        f"_ingest ({args.batch_size:,}/call): {rate:,.0f} ev/s overall, per batch "
        f"{spread(stats['rates'])}  [bar 10,000: {'OK' if rate >= 10000 else 'NOT MET'}]"
    )
    dup_rates = resend(registry, [kept[b] for b in keep])
    say(
        f"re-sent {len(keep)} batches of {args.batch_size:,} (all duplicates): "
        f"{spread(dup_rates)} ev/s"
    )
    summary.append(f"re-send (all duplicates): {spread(dup_rates)} ev/s")
    say(f"VACUUM ANALYZE after ingestion: {vacuum_analyze(args.db):.1f} s")


def stage_http(args, registry, subs, summary):
    """2. The HTTP endpoint on a real ``odoo-bin``, per ``--http-workers`` value."""
    say("")
    say(
        f"== 2. HTTP POST /flex/usage/v1/events: {args.http_events:,} events per run, "
        f"{args.http_batch}/request, {args.http_threads} client threads"
    )
    key = api_key(registry)
    odoo.sql_db.close_db(args.db)
    for workers in [int(w) for w in args.http_workers.split(",")]:
        log_path = f"/tmp/bench_usage_{args.db}_w{workers}.log"
        with Server(args.db, workers, log_path) as server:
            # Warm-up: load the registry and the routes in every worker (not timed).
            warm = EventFactory(subs, args.seed + 99, HTTP_START, HTTP_SPAN_SECONDS, "w-")
            warm.prefix = f"warm-w{workers}-"
            http_ingest(server.url, key, warm, 20 * args.http_threads, 10, args.http_threads)
            rates, lat = [], []
            for run in range(args.http_runs):
                factory = EventFactory(
                    subs,
                    args.seed + 1000 * (workers + 1) + run,
                    HTTP_START,
                    HTTP_SPAN_SECONDS,
                    f"h-w{workers}-r{run}-",
                )
                seconds, latencies, accepted = http_ingest(
                    server.url,
                    key,
                    factory,
                    args.http_events,
                    args.http_batch,
                    args.http_threads,
                )
                if accepted != args.http_events:
                    raise SystemExit(f"HTTP: {accepted} accepted of {args.http_events}")
                rates.append(accepted / seconds)
                lat.extend(latencies)
                say(
                    f"  workers={workers} run {run + 1}: {accepted:,} events in "
                    f"{seconds:.1f} s = {accepted / seconds:,.0f} ev/s; request "
                    f"latency median {statistics.median(latencies) * 1000:.0f} ms "
                    f"[{min(latencies) * 1000:.0f}–{max(latencies) * 1000:.0f}]"
                )
        ok = min(rates) >= 3000
        say(
            f"workers={workers}: {spread(rates)} ev/s   bar >= 3,000 ev/s "
            f"{'OK' if ok else 'NOT MET'}  (server log {log_path})"
        )
        summary.append(
            f"HTTP workers={workers}, {args.http_threads} threads: {spread(rates)} ev/s  "
            f"[bar 3,000: {'OK' if ok else 'NOT MET'}]"
        )
    say(f"VACUUM ANALYZE after HTTP ingestion: {vacuum_analyze(args.db):.1f} s")


def stage_rate(args, registry, subs, summary):
    """3. Aggregation alone, then the invoicing cron on copies, then correctness."""
    say("")
    with registry.cursor() as cr:
        cr.execute(
            "SELECT count(*), count(*) FILTER (WHERE event_time >= %s AND event_time < %s) "
            "FROM flex_usage",
            (RATED_START, RATED_END),
        )
        all_events, window_events = cr.fetchone()
    say(
        f"== 3. rating {RATED_START}..{RATED_END}: {window_events:,} events in the "
        f"window, {all_events:,} in flex_usage"
    )
    agg_secs, groups, counted = time_aggregation(registry, args.agg_runs)
    say(
        f"_aggregate_usage, {len(subs)} windows in one call: {spread(agg_secs, '{:.2f}')} s "
        f"({groups} groups, {counted:,} events counted)"
    )
    summary.append(f"_aggregate_usage alone (1 call): {spread(agg_secs, '{:.2f}')} s")
    rated_db = f"{args.db}_rated"
    runs = []
    for run in range(args.rate_runs):
        started = time.perf_counter()
        copy_db(args.db, rated_db)
        copy_secs = time.perf_counter() - started
        vacuum_analyze(rated_db)
        rated = odoo.modules.registry.Registry.new(rated_db)
        result = run_invoicing(rated, RATED_END, args.cron_batch)
        runs.append(result)
        say(
            f"  run {run + 1} (copy {copy_secs:.0f} s): {result['subs']} subs, "
            f"{result['invoices']} invoices ({result['posted']} posted), "
            f"{result['usage_lines']} usage lines in {result['total']:.1f} s "
            f"(commit included): aggregation {result['aggregate']:.2f} s in "
            f"{result['aggregate_calls']} calls, marking invoiced {result['mark']:.2f} s, "
            f"posting {result['post']:.1f} s; {result['queries']:,} queries"
        )
        last = run == args.rate_runs - 1
        if last:
            with rated.cursor() as cr:
                cr.execute(
                    "SELECT state, count(*) FROM flex_usage WHERE event_time >= %s "
                    "AND event_time < %s GROUP BY state",
                    (RATED_START, RATED_END),
                )
                states = dict(cr.fetchall())
            say(f"  events of the window by state: {states}")
            say("  sample (raw events read back, aggregated and rated in Python):")
            rng = random.Random(args.seed)
            sample = sorted(rng.sample([sub_id for sub_id, _name in subs], 3))
            sample_ok = check_sample(rated, result["max_move"], sample)
            mismatches, total, n = check_all(rated, result["max_move"])
            say(f"  sample check: {'OK' if sample_ok else 'MISMATCH'}")
            say(
                f"  all {n} subscriptions (independent SQL GROUP BY + Python rating): "
                f"{'OK' if not mismatches else f'{len(mismatches)} MISMATCH'}, "
                f"expected usage total {total:,}"
            )
            by_code = defaultdict(list)
            for sub_id, code, expected, amount in mismatches:
                by_code[code].append((sub_id, expected, amount))
            for code, rows in sorted(by_code.items()):
                examples = ", ".join(
                    f"sub {sub_id}: expected {expected} invoiced {amount}"
                    for sub_id, expected, amount in rows[:3]
                )
                say(f"    {code}: {len(rows)} mismatches, e.g. {examples}")
            summary.append(
                f"sample of 3 recomputed from raw events: {'OK' if sample_ok else 'MISMATCH'}"
                f"; all subscriptions: {'OK' if not mismatches else 'MISMATCH'}"
            )
        odoo.sql_db.close_db(rated_db)
        odoo.modules.registry.Registry.delete(rated_db)
        if not (last and args.keep_rated):
            drop_db(rated_db)
    totals = [r["total"] for r in runs]
    aggs = [r["aggregate"] for r in runs]
    ok = max(totals) <= 30
    say(
        f"invoicing {window_events:,} events / {len(subs)} subscriptions: "
        f"{spread(totals, '{:.1f}')} s total, of which aggregation "
        f"{spread(aggs, '{:.2f}')} s, marking {spread([r['mark'] for r in runs], '{:.2f}')} s, "
        f"posting {spread([r['post'] for r in runs], '{:.1f}')} s   bar <= 30 s "
        f"{'OK' if ok else 'NOT MET'}"
    )
    summary.append(
        f"rating (whole invoicing cron, commit included): {spread(totals, '{:.1f}')} s, "
        f"aggregation inside {spread(aggs, '{:.2f}')} s  [bar 30 s: "
        f"{'OK' if ok else 'NOT MET'}]"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bench_usage", help="database to (re)create")
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000, help="events via _ingest")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per _ingest")
    parser.add_argument("--resend", type=int, default=3, help="batches re-sent (duplicates)")
    parser.add_argument("--http-events", type=int, default=100_000, help="per HTTP run")
    parser.add_argument("--http-batch", type=int, default=1000)
    parser.add_argument("--http-threads", type=int, default=2)
    parser.add_argument(
        "--http-workers", default="0,2", help="odoo-bin --workers settings to measure"
    )
    parser.add_argument("--http-runs", type=int, default=2, help="HTTP runs per setting")
    parser.add_argument("--agg-runs", type=int, default=3, help="timed _aggregate_usage calls")
    parser.add_argument(
        "--rate-runs",
        type=int,
        default=2,
        help="invoicing runs, each on a fresh copy of the ingested database",
    )
    parser.add_argument("--cron-batch", type=int, default=None, help="invoicing cron batch")
    parser.add_argument(
        "--stages",
        default="seed,ingest,http,rate",
        help="comma-separated subset of seed,ingest,http,rate (with --reuse-db)",
    )
    parser.add_argument(
        "--reuse-db", action="store_true", help="keep an existing --db instead of recreating"
    )
    parser.add_argument(
        "--template",
        default=None,
        help="copy this installed (unseeded) database instead of installing; "
        "installed first when it does not exist",
    )
    parser.add_argument("--keep-rated", action="store_true", help="keep the last rated copy")
    parser.add_argument("--seed", type=int, default=20261001)
    parser.add_argument("--log-level", default="warn")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    configure_odoo(args)
    logging.getLogger("bench_usage").setLevel(logging.INFO)
    wall = time.perf_counter()

    say(
        f"bench_usage: db={args.db} subs={args.subs} events={args.events:,} "
        f"batch={args.batch_size:,} http={args.http_events:,}x{args.http_runs} per "
        f"workers in {{{args.http_workers}}} ({args.http_threads} client threads, "
        f"{args.http_batch}/request), rated window {RATED_START}..{RATED_END} (excl.)"
    )
    if args.reuse_db and db_exists(args.db):
        registry = odoo.modules.registry.Registry(args.db)
    else:
        drop_db(args.db)
        if args.template:
            if not db_exists(args.template):
                install_db(args.template)
            copy_db(args.template, args.db)
            say(f"database {args.db} copied from {args.template}")
            registry = odoo.modules.registry.Registry.new(args.db)
        else:
            registry = install_db(args.db)
    if "seed" in stages:
        seed(registry, args.subs)
        say(f"VACUUM ANALYZE after seeding: {vacuum_analyze(args.db):.1f} s")
    subs = subscription_refs(registry)
    summary = []

    if "ingest" in stages:
        stage_ingest(args, registry, subs, summary)
    if "http" in stages and args.http_events:
        stage_http(args, registry, subs, summary)
    if "rate" in stages:
        stage_rate(args, registry, subs, summary)

    say("")
    say("== summary (median [min–max])")
    for line in summary:
        say(f"  {line}")
    say(f"total wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
