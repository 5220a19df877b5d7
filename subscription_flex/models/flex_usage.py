import math
from collections import namedtuple
from datetime import UTC, datetime, timedelta

from psycopg2.extras import execute_values

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

MAX_KEY_LENGTH = 255
MAX_UNIQUE_VALUE_LENGTH = 255
FUTURE_TOLERANCE = timedelta(days=1)
INSERT_PAGE_SIZE = 5000


class FlexUsage(models.Model):
    """One usage event reported by the customer's systems.

    Events are deduplicated by their idempotency ``key``, unique per subscription: the
    same key sent twice (retries, replays, double exports) is counted once, whichever
    way it arrives (Python batch, HTTP endpoint, CSV/XLSX import, manual entry).
    Billed events are frozen; corrections are new events (negative quantities where the
    product allows corrections).
    """

    _name = "flex.usage"
    _description = "Usage Record"
    _order = "event_time desc, id desc"
    _check_company_auto = True

    # Indexes, on purpose only three: the primary key, (subscription, key) for
    # deduplication and (subscription, event time) for rating (created in init()). The
    # columns that billing updates (state, billed line) are in no index, and the table
    # keeps free room in each page (fillfactor), so marking a million events invoiced is
    # a HOT update that writes no index entry: 3.6x faster than with the default
    # per-field indexes (measured, see the issue note).
    subscription_id = fields.Many2one(
        "flex.subscription", required=True, ondelete="restrict", check_company=True
    )
    company_id = fields.Many2one("res.company", required=True)
    product_id = fields.Many2one(
        "product.product",
        string="Metric",
        required=True,
        domain="[('flex_metered', '=', True)]",
    )
    quantity = fields.Float(required=True, digits="Product Unit of Measure")
    event_time = fields.Datetime(required=True)
    key = fields.Char(string="Idempotency Key", required=True)
    unique_value = fields.Char(
        help="For unique counts: the value counted once per period (a user id, a device...)."
    )
    state = fields.Selection(
        [("pending", "Pending"), ("invoiced", "Invoiced")],
        default="pending",
        required=True,
        readonly=True,
    )
    # A plain integer, not a Many2one: a foreign key would need an index on this column
    # (else every deletion of any journal item in the database scans this table), and
    # an indexed column cannot be updated HOT. Usage lines release their events
    # themselves when they are deleted (account.move.line unlink).
    billed_line_ref = fields.Integer(readonly=True, copy=False, string="Billed Line Id")
    invoice_line_id = fields.Many2one(
        "account.move.line", compute="_compute_invoice_line_id", search="_search_invoice_line_id"
    )
    invoice_id = fields.Many2one(related="invoice_line_id.move_id", string="Invoice")
    source = fields.Selection(
        [
            ("api", "HTTP API"),
            ("batch", "Python batch"),
            ("import", "Import"),
            ("manual", "Manual"),
        ],
        default="manual",
        required=True,
        readonly=True,
    )

    _sql_constraints = [
        (
            "key_unique",
            "UNIQUE(subscription_id, key)",
            "This idempotency key was already used for this subscription.",
        ),
    ]

    def init(self):
        result = super().init()
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS flex_usage_subscription_time_index"
            " ON flex_usage (subscription_id, event_time)"
        )
        self.env.cr.execute("ALTER TABLE flex_usage SET (fillfactor = 50)")
        # Databases installed before 18.0.1.0.0 was final had per-field indexes and a
        # foreign key on the billed line: drop them (see the comment on the fields).
        self.env.cr.execute(
            """
            DROP INDEX IF EXISTS flex_usage__company_id_index, flex_usage__event_time_index,
                flex_usage__invoice_line_id_index, flex_usage__product_id_index,
                flex_usage__state_index, flex_usage__subscription_id_index;
            ALTER TABLE flex_usage DROP CONSTRAINT IF EXISTS flex_usage_invoice_line_id_fkey;
            """
        )
        return result

    @api.depends("billed_line_ref")
    def _compute_invoice_line_id(self):
        lines = (
            self.env["account.move.line"]
            .browse({ref for ref in self.mapped("billed_line_ref") if ref})
            .exists()
        )
        for record in self:
            line = (
                lines.browse(record.billed_line_ref) if record.billed_line_ref else lines.browse()
            )
            record.invoice_line_id = line if line in lines else False

    def _search_invoice_line_id(self, operator, value):
        if operator in ("=", "!=") and not value:
            return [("billed_line_ref", operator, False)]
        field = "move_id.name" if isinstance(value, str) else "id"
        lines = self.env["account.move.line"]._search([(field, operator, value)])
        return [("billed_line_ref", "in", lines)]

    # ------------------------------------------------------------------ CRUD

    @api.model_create_multi
    def create(self, vals_list):
        """ORM path (form, CSV/XLSX import): the same validation and deduplication as
        :meth:`_ingest`. A key already recorded returns the existing record instead of
        failing, so re-importing a file is harmless."""
        validator = self._make_validator()
        source = "import" if self.env.context.get("import_file") else "manual"
        prepared, existing = [], {}
        for vals in vals_list:
            event = {
                "subscription": vals.get("subscription_id"),
                "product": vals.get("product_id"),
                "quantity": vals.get("quantity"),
                "time": vals.get("event_time"),
                "key": vals.get("key"),
                "unique_value": vals.get("unique_value"),
            }
            row, reason = validator(event)
            if reason:
                raise ValidationError(reason)
            prepared.append({**vals, **row, "source": vals.get("source", source)})
        keys = {(p["subscription_id"], p["key"]) for p in prepared}
        if keys:
            for record in self.sudo().search(
                [
                    ("subscription_id", "in", list({k[0] for k in keys})),
                    ("key", "in", list({k[1] for k in keys})),
                ]
            ):
                existing[(record.subscription_id.id, record.key)] = record.id
        to_create, refs = [], []
        for vals in prepared:
            ident = (vals["subscription_id"], vals["key"])
            if ident not in existing:
                existing[ident] = None  # created below; a later duplicate in this call maps to it
                to_create.append(vals)
            refs.append(ident)
        created = super().create(to_create)
        for record in created:
            existing[(record.subscription_id.id, record.key)] = record.id
        # One record per given vals, as callers (import) zip results with their input.
        return self.browse([existing[ident] for ident in refs])

    def write(self, vals):
        if not self.env.context.get("flex_usage_billing") and any(
            record.state == "invoiced" for record in self
        ):
            raise UserError(
                self.env._("Invoiced usage cannot be changed; record a correction instead.")
            )
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_invoiced(self):
        if any(record.state == "invoiced" for record in self):
            raise UserError(
                self.env._("Invoiced usage cannot be deleted; record a correction instead.")
            )

    # -------------------------------------------------------------- ingestion

    @api.model
    def _make_validator(self, now=None):
        """A function ``event -> (row, reason)`` with lookups cached for a whole batch.

        ``event`` keys: ``subscription`` (id or reference), ``product`` (id or internal
        reference), ``quantity``, ``time`` (ISO 8601 string, datetime; naive = UTC),
        ``key``, ``unique_value`` (optional). ``row`` holds the column values of a valid
        event; ``reason`` says, in the user's language, why an event is refused.
        """
        return _UsageValidator(
            self.env, now or self.env.context.get("flex_now") or fields.Datetime.now()
        )

    @api.model
    def _ingest(self, events, source="batch"):
        """Record a batch of usage events; the documented Python entry point.

        Returns ``{"accepted": n, "duplicates": n, "rejected": n, "results": [...]}``
        with one ``{"index", "key", "status", "reason"}`` per event, in order;
        ``status`` is ``accepted``, ``duplicate`` or ``rejected``. Valid events are
        written with ``INSERT ... ON CONFLICT DO NOTHING`` in pages: an event already
        recorded — by an earlier call, a concurrent one, or earlier in the same batch —
        is a duplicate, never an error. A rejected event writes nothing and does not
        affect the others.
        """
        self.check_access("create")
        validate = self._make_validator()
        validate.prefetch(events)
        results, rows, row_index = [], [], []
        seen = set()
        for index, event in enumerate(events):
            row, reason = validate(event)
            key = event.get("key") if isinstance(event, dict) else None
            if reason:
                results.append({"index": index, "key": key, "status": "rejected", "reason": reason})
                continue
            ident = (row["subscription_id"], row["key"])
            if ident in seen:
                results.append({"index": index, "key": key, "status": "duplicate"})
                continue
            seen.add(ident)
            results.append({"index": index, "key": key, "status": None})
            rows.append(row)
            row_index.append(index)
        inserted = self._insert_rows(rows, source)
        for row, index in zip(rows, row_index, strict=True):
            ident = (row["subscription_id"], row["key"])
            results[index]["status"] = "accepted" if ident in inserted else "duplicate"
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for result in results:
            counts[result["status"]] += 1
        return {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "results": results,
        }

    @api.model
    def _insert_rows(self, rows, source):
        """Bulk insert; returns the ``(subscription_id, key)`` pairs actually inserted.
        SQL because the ORM has no ``ON CONFLICT``, and it is 7× faster than ``create``."""
        if not rows:
            return set()
        uid = self.env.uid
        now = fields.Datetime.now()
        values = [
            (
                r["subscription_id"],
                r["company_id"],
                r["product_id"],
                r["quantity"],
                r["event_time"],
                r["key"],
                r["unique_value"],
            )
            for r in rows
        ]
        # The columns equal for every row are parameters of the statement, not repeated
        # in each row of VALUES: half the values to adapt and for PostgreSQL to parse.
        query = self.env.cr.mogrify(
            """
            INSERT INTO flex_usage (subscription_id, company_id, product_id, quantity,
                event_time, key, unique_value, state, source,
                create_uid, create_date, write_uid, write_date)
            SELECT v.*, 'pending', %s, %s, %s, %s, %s FROM (VALUES %%s) AS v
            ON CONFLICT (subscription_id, key) DO NOTHING
            RETURNING subscription_id, key
            """,
            (source, uid, now, uid, now),
        ).decode()
        inserted = set()
        for start in range(0, len(values), INSERT_PAGE_SIZE):
            page = execute_values(
                self.env.cr._obj,
                query,
                values[start : start + INSERT_PAGE_SIZE],
                page_size=INSERT_PAGE_SIZE,
                fetch=True,
            )
            inserted.update((sub_id, key) for sub_id, key in page)
        self.env["flex.usage"].invalidate_model()
        return inserted


_ProductInfo = namedtuple("_ProductInfo", "id metered corrections name")


class _Rejected(Exception):
    """An event is refused; ``args[0]`` is the translated reason."""


class _UsageValidator:
    """Validates usage events one by one, caching subscriptions and products."""

    def __init__(self, env, now):
        self.env = env
        self.now = now
        self.subscriptions = {}
        self.products = {}
        self.allowed_companies = None if env.su else set(env.companies.ids)

    def __call__(self, event):
        try:
            return self._validate(event), None
        except _Rejected as rejection:
            return None, rejection.args[0]

    def _validate(self, event):
        if not isinstance(event, dict):
            raise _Rejected(self.env._("An event must be an object."))
        key = self._key(event.get("key"))
        sub_id, company_id, start_date, metered = self._subscription(event.get("subscription"))
        product = self._product(event.get("product"), metered)
        when = self._time(event.get("time"), start_date)
        return {
            "subscription_id": sub_id,
            "company_id": company_id,
            "product_id": product.id,
            "quantity": self._quantity(event.get("quantity", 1), product),
            "event_time": when,
            "key": key,
            "unique_value": self._unique_value(event.get("unique_value")),
        }

    def _key(self, key):
        if not isinstance(key, str) or not key.strip():
            raise _Rejected(self.env._("Missing idempotency key."))
        if not _storable(key):
            raise _Rejected(
                self.env._("The idempotency key holds characters that cannot be stored.")
            )
        if len(key) > MAX_KEY_LENGTH:
            raise _Rejected(
                self.env._(
                    "The idempotency key is longer than %(max)s characters.", max=MAX_KEY_LENGTH
                )
            )
        return key

    def _subscription(self, ref):
        if not _is_reference(ref):
            raise _Rejected(self.env._("Unknown subscription."))
        if ref not in self.subscriptions:
            self.subscriptions[ref] = self._load_subscription(ref)
        info = self.subscriptions[ref]
        if info is None:
            raise _Rejected(self.env._("Unknown subscription."))
        sub_id, company_id, state, start_date, metered = info
        if state in ("draft", "closed"):
            raise _Rejected(self.env._("The subscription is not running (%(state)s).", state=state))
        return sub_id, company_id, start_date, metered

    def _load_subscription(self, ref):
        Subscription = self.env["flex.subscription"]
        if isinstance(ref, int) and not isinstance(ref, bool):
            sub = Subscription.browse(ref).exists()
        elif isinstance(ref, str) and ref.strip():
            sub = Subscription.search([("name", "=", ref.strip())], limit=1)
        else:
            return None
        return self._subscription_info(sub)

    def _subscription_info(self, sub):
        if not sub or (
            self.allowed_companies is not None and sub.company_id.id not in self.allowed_companies
        ):
            # Another company's subscription is "unknown": its existence is not leaked.
            return None
        metered = {line.product_id.id for line in sub.line_ids if line.product_id.flex_metered}
        return sub.id, sub.company_id.id, sub.state, sub.start_date, metered

    def _subscription_infos(self, sub_ids):
        """:meth:`_subscription_info` of many subscriptions the user may read, in one query
        (through the ORM, 1,000 subscriptions with their lines took a third of a batch)."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT s.id, s.company_id, s.state, s.start_date,
                   array_remove(array_agg(DISTINCT CASE WHEN t.flex_metered
                                                        THEN l.product_id END), NULL)
              FROM flex_subscription s
              LEFT JOIN flex_subscription_line l ON l.subscription_id = s.id
              LEFT JOIN product_product p ON p.id = l.product_id
              LEFT JOIN product_template t ON t.id = p.product_tmpl_id
             WHERE s.id = ANY(%s)
             GROUP BY s.id
            """,
            [list(sub_ids)],
        )
        infos = {}
        for sub_id, company_id, state, start_date, metered in self.env.cr.fetchall():
            hidden = self.allowed_companies is not None and company_id not in self.allowed_companies
            infos[sub_id] = (
                None if hidden else (sub_id, company_id, state, start_date, set(metered))
            )
        return infos

    def prefetch(self, events):
        """Load every subscription ``events`` refer to in a few queries, instead of a
        few per subscription (1,000 subscriptions in a batch cost ~4,000 queries).

        Only fills, with the same values, the cache :meth:`_subscription` fills lazily:
        references resolved the same way (ids: existing records; names: the first match
        in the model's order, record rules applied), and nothing else changes. Records
        the user may not read are left to the lazy path, which behaves as before.
        """
        ids, names = set(), set()
        for event in events:
            ref = event.get("subscription") if isinstance(event, dict) else None
            if not _is_reference(ref) or ref in self.subscriptions:
                continue
            if isinstance(ref, int):
                ids.add(ref)
            elif isinstance(ref, str) and ref.strip():
                names.add(ref)
        if not ids and not names:
            return
        Subscription = self.env["flex.subscription"]
        try:
            by_name = {}
            if names:
                stripped = list({name.strip() for name in names})
                for sub in Subscription.search([("name", "in", stripped)]):
                    by_name.setdefault(sub.name, sub)  # first in _order, as limit=1
            existing = Subscription.browse(ids).exists() if ids else Subscription
            readable = existing._filtered_access("read") if existing else Subscription
            sub_ids = sorted({sub.id for sub in by_name.values()} | set(readable.ids))
            info = self._subscription_infos(sub_ids)
        except AccessError:
            return  # the lazy path resolves (or refuses) them one by one, as before
        for name in names:
            sub = by_name.get(name.strip())
            self.subscriptions[name] = info[sub.id] if sub else None
        for ref in ids:
            if ref in info:
                self.subscriptions[ref] = info[ref]
            elif ref not in existing.ids:
                self.subscriptions[ref] = None

    def _product(self, ref, metered):
        if not _is_reference(ref):
            raise _Rejected(self.env._("Unknown product."))
        if ref not in self.products:
            # sudo: product references are resolved for any API user; access to the
            # subscription was checked above.
            Product = self.env["product.product"].sudo()
            if isinstance(ref, int) and not isinstance(ref, bool):
                product = Product.browse(ref).exists()
            elif isinstance(ref, str) and ref.strip():
                product = Product.search([("default_code", "=", ref.strip())], limit=1)
            else:
                product = Product
            # Plain values: read once per batch, not through the ORM for every event.
            self.products[ref] = product and _ProductInfo(
                product.id,
                product.flex_metered,
                product.flex_allow_corrections,
                product.display_name,
            )
        product = self.products[ref]
        if not product:
            raise _Rejected(self.env._("Unknown product."))
        if not product.metered:
            raise _Rejected(self.env._("Product %(product)s is not metered.", product=product.name))
        if product.id not in metered:
            raise _Rejected(
                self.env._("Product %(product)s is not on this subscription.", product=product.name)
            )
        return product

    def _quantity(self, quantity, product):
        number = None
        if isinstance(quantity, int | float | str) and not isinstance(quantity, bool):
            try:
                number = float(quantity)
            except (ValueError, OverflowError):  # OverflowError: an int beyond 1e308
                number = None
        if number is None or not math.isfinite(number):
            raise _Rejected(self.env._("The quantity must be a number."))
        if number < 0 and not product.corrections:
            raise _Rejected(
                self.env._(
                    "Negative quantities are not allowed for %(product)s.",
                    product=product.name,
                )
            )
        return number

    def _time(self, value, start_date):
        when = _parse_time(value)
        if when is None:
            raise _Rejected(self.env._("The event time is missing or not an ISO 8601 date-time."))
        if when > self.now + FUTURE_TOLERANCE:
            raise _Rejected(self.env._("The event time is more than a day in the future."))
        if when.date() < start_date:
            raise _Rejected(self.env._("The event time is before the subscription started."))
        return when

    def _unique_value(self, value):
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise _Rejected(self.env._("The unique value must be a string."))
        value = str(value)
        if not _storable(value):
            raise _Rejected(self.env._("The unique value holds characters that cannot be stored."))
        if len(value) > MAX_UNIQUE_VALUE_LENGTH:
            raise _Rejected(self.env._("The unique value is too long."))
        return value


def _parse_time(value):
    """UTC naive datetime from an ISO 8601 string or a datetime; ``None`` if invalid."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if when.tzinfo is not None:
        try:
            when = when.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 moved past the calendar's end
            return None
    return when.replace(microsecond=0)


def _storable(text):
    """PostgreSQL stores no NUL character, and UTF-8 has no lone surrogate (JSON's
    "\\ud800" decodes to one): such text fails in the database, not in validation."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_reference(ref):
    """A subscription or product reference: an id or a name/code that can be searched."""
    if isinstance(ref, bool):
        return False
    if isinstance(ref, int):
        return True
    return isinstance(ref, str) and _storable(ref)
