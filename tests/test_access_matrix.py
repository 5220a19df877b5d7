"""Who may do what: every model of subscription_flex and subscription_flex_sepa, for
every kind of user, on a record of the first company.

``EXPECTED`` is the security design, written down once: model -> role -> the operations
allowed, among ``r``ead, ``w``rite, ``c``reate and ``u``nlink. The models are taken from
the registry, so a new model without an entry fails the test until someone decides who
may use it.

Each allowed operation is checked with ``check_access`` and, for read, write and unlink,
done for real in a savepoint that is rolled back (a business refusal such as "invoiced
usage cannot be deleted" is not an access answer and passes). Each denied operation
must raise ``AccessError`` from ``check_access`` and from the real call. Wizards
(transient models) belong to the user who opens them: for them only the model's access
rights are checked.
"""

from datetime import date, datetime

import psycopg2

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.subscription_flex_sepa.tests.common import SepaCommon

ADDONS = ("subscription_flex", "subscription_flex_sepa")
ROLES = ("portal", "internal", "user", "billing", "accountant", "manager", "other_company")

# Role -> groups. "portal" is a contact of the subscriptions' customer; "other_company" is
# a subscription manager and billing administrator of another company only.
ROLE_GROUPS = {
    "portal": "base.group_portal",
    "internal": "base.group_user",
    "user": "subscription_flex.group_flex_user",
    "billing": "account.group_account_invoice",
    "accountant": "account.group_account_manager",
    "manager": "subscription_flex.group_flex_manager",
    "other_company": "subscription_flex.group_flex_manager,account.group_account_manager",
}

NONE = dict.fromkeys(ROLES, "")


def _rights(**by_role):
    return {**NONE, **by_role}


# Subscription data the customer's own portal users read (subscription_flex_portal).
PORTAL_READS = {"flex.subscription", "flex.subscription.line", "flex.subscription.change"}

EXPECTED = {
    # Shared configuration (no company): every subscription manager keeps it.
    "flex.close.reason": _rights(user="r", manager="rwcu", other_company="rwcu"),
    # A plan of the first company, its lines, prices, tiers and reminders: read by the
    # users who sell and bill it, configured by managers, invisible to other companies.
    "flex.plan": _rights(user="r", billing="r", accountant="r", manager="rwcu"),
    "flex.plan.line": _rights(user="r", manager="rwcu"),
    "flex.price": _rights(user="r", manager="rwcu"),
    "flex.price.tier": _rights(user="r", manager="rwcu"),
    "flex.reminder.rule": _rights(user="r", manager="rwcu"),
    # What the reminders sent: read, and cleaned up by managers; written by the cron only.
    "flex.reminder.log": _rights(user="r", manager="ru"),
    # Subscriptions: users manage them, managers delete them, billing reads them.
    "flex.subscription": _rights(user="rwc", billing="r", accountant="r", manager="rwcu"),
    "flex.subscription.line": _rights(user="rwcu", billing="r", accountant="r", manager="rwcu"),
    "flex.subscription.change": _rights(user="rwc", billing="r", accountant="r", manager="rwcu"),
    "flex.subscription.change.line": _rights(user="rwcu", manager="rwcu"),
    # The proration trail: written by the change's own code only (sudo), read by all.
    "flex.subscription.change.item": _rights(user="r", billing="r", accountant="r", manager="r"),
    "flex.usage": _rights(user="rwc", manager="rwcu"),
    # MRR: computed, read only.
    "flex.mrr.movement": _rights(user="r", billing="r", accountant="r", manager="r"),
    "flex.mrr.month": _rights(user="r", billing="r", accountant="r", manager="r"),
    # SEPA.
    "flex.sepa.mandate": _rights(user="rwc", billing="rwc", accountant="rwc", manager="rwcu"),
    "flex.sepa.batch": _rights(billing="rwc", accountant="rwc", manager="rwcu"),
    "flex.sepa.batch.line": _rights(billing="rwcu", accountant="rwcu", manager="rwcu"),
    "flex.sepa.return.reason": _rights(user="r", billing="rwc", accountant="rwc", manager="rwcu"),
    "flex.sepa.return": _rights(user="r", billing="rwc", accountant="rwc", manager="rwc"),
    "flex.sepa.bank.file": _rights(billing="r", accountant="rwc", manager="rwcu"),
    "flex.sepa.bank.entry": _rights(billing="r", accountant="rwc", manager="rwcu"),
    # Wizards: the model's access rights only (see the module docstring).
    "flex.plan.migration": _rights(manager="rwc", other_company="rwc"),
    "flex.subscription.close.wizard": _rights(user="rwc", manager="rwc", other_company="rwc"),
    "flex.sepa.bank.file.import": _rights(accountant="rwcu", other_company="rwcu"),
}

OPERATIONS = {"r": "read", "w": "write", "c": "create", "u": "unlink"}


class _Rollback(Exception):
    """Leaves a savepoint the way it came in, after an operation that succeeded."""


@tagged("post_install", "-at_install")
class TestAccessMatrix(SepaCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_company = cls.setup_other_company(name="Matrix Rival Co")["company"]
        cls.users = {}
        for role, groups in ROLE_GROUPS.items():
            company = cls.other_company if role == "other_company" else cls.company
            vals = {"company_id": company.id, "company_ids": [Command.set(company.ids)]}
            if role == "portal":
                vals["partner_id"] = cls.partner.id  # a contact of the customer itself
            cls.users[role] = new_test_user(
                cls.env, login=f"flex_matrix_{role}", groups=groups, **vals
            )
        cls.records = cls._create_records()

    @classmethod
    def _create_records(cls):
        """One record of each model, in the first company, created as superuser (the
        account test base's own user is an accountant, not the superuser)."""
        env = cls.env(su=True)
        company = cls.company
        metered = cls._create_product(
            name="Matrix calls",
            default_code="MATRIX-CALLS",
            type="service",
            flex_is_subscription=True,
            flex_metered=True,
        )
        plan = cls._create_plan(name="Matrix plan", company_id=company.id)
        plan_line = env["flex.plan.line"].create(
            {"plan_id": plan.id, "product_id": cls.product_seat.id}
        )
        price = env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": metered.id,
                "currency_id": cls.currency.id,
                "date_start": date(2025, 1, 1),
                "pricing_model": "graduated",
                "price_unit": 0.0,
                "tier_ids": [Command.create({"open_ended": True, "unit_price": 0.01})],
            }
        )
        sub = cls._create_subscription(
            plan=plan,
            start=date(2026, 1, 1),
            lines=[(cls.product_seat, 2, 10.0, 0.0), (metered, 1, None, 0.0)],
        )
        seat_line = sub.line_ids.filtered(lambda line: line.product_id == cls.product_seat)
        invoice = sub.with_context(flex_today=date(2026, 1, 1))._create_recurring_invoices(
            date(2026, 1, 1)
        )
        usage = env["flex.usage"].create(
            {
                "subscription_id": sub.id,
                "product_id": metered.id,
                "quantity": 3,
                "event_time": datetime(2026, 1, 5, 10, 0),
                "key": "matrix-1",
            }
        )
        change = env["flex.subscription.change"].create(
            {
                "subscription_id": sub.id,
                "timing": "date",
                "date": date(2026, 1, 20),
                "line_ids": [Command.create({"subscription_line_id": seat_line.id, "quantity": 3})],
            }
        )
        item = env["flex.subscription.change.item"].create(
            {
                "change_id": change.id,
                "subscription_id": sub.id,
                "product_id": cls.product_seat.id,
                "name": "Matrix proration",
                "kind": "charge",
                "amount": 1.0,
            }
        )
        reminder_rule = env["flex.reminder.rule"].create(
            {
                "name": "Matrix renewal",
                "plan_id": plan.id,
                "trigger": "period_end",
                "template_id": env.ref("subscription_flex.mail_template_flex_renewal").id,
            }
        )
        reminder_log = env["flex.reminder.log"].create(
            {"rule_id": reminder_rule.id, "subscription_id": sub.id, "key": "matrix-2026-01"}
        )
        movement = env["flex.mrr.movement"].search([("subscription_id", "=", sub.id)], limit=1)
        month = env["flex.mrr.month"].search([("company_id", "=", company.id)], limit=1)
        debtor, account = cls._debtor("Matrix debtor", "de")
        mandate = cls._mandate(debtor, account)
        batch = env["flex.sepa.batch"].create(
            {"due_by": date(2026, 2, 1), "company_id": company.id}
        )
        batch_line = env["flex.sepa.batch.line"].create(
            {
                "batch_id": batch.id,
                "invoice_id": invoice.id,
                "partner_id": debtor.id,
                "mandate_id": mandate.id,
                "amount": 20.0,
            }
        )
        reason = env["flex.sepa.return.reason"].create(
            {"code": "MX01", "name": "Matrix reason", "company_id": company.id}
        )
        sepa_return = env["flex.sepa.return"].create(
            {
                "company_id": company.id,
                "return_type": "return",
                "batch_line_id": batch_line.id,
                "invoice_id": invoice.id,
                "date": date(2026, 2, 5),
                "reason_id": reason.id,
            }
        )
        bank_file = env["flex.sepa.bank.file"].create(
            {"name": "matrix.xml", "company_id": company.id}
        )
        bank_entry = env["flex.sepa.bank.entry"].create(
            {
                "file_id": bank_file.id,
                "company_id": company.id,
                "state": "unmatched",
                "key": "MATRIX-ENTRY-1",
            }
        )
        records = {
            "flex.close.reason": env["flex.close.reason"].create({"name": "Matrix reason"}),
            "flex.plan": plan,
            "flex.plan.line": plan_line,
            "flex.price": price,
            "flex.price.tier": price.tier_ids,
            "flex.reminder.rule": reminder_rule,
            "flex.reminder.log": reminder_log,
            "flex.subscription": sub,
            "flex.subscription.line": seat_line,
            "flex.subscription.change": change,
            "flex.subscription.change.line": change.line_ids,
            "flex.subscription.change.item": item,
            "flex.usage": usage,
            "flex.mrr.movement": movement,
            "flex.mrr.month": month,
            "flex.sepa.mandate": mandate,
            "flex.sepa.batch": batch,
            "flex.sepa.batch.line": batch_line,
            "flex.sepa.return.reason": reason,
            "flex.sepa.return": sepa_return,
            "flex.sepa.bank.file": bank_file,
            "flex.sepa.bank.entry": bank_entry,
        }
        for model, record in records.items():
            assert len(record) == 1, f"no record of {model} to try the matrix on"
        return records

    # ------------------------------------------------------------------ helpers

    def _expected(self, model, role):
        allowed = EXPECTED[model][role]
        if role == "portal" and model in PORTAL_READS and self._portal_installed():
            allowed += "r"
        return allowed

    def _portal_installed(self):
        return bool(
            self.env["ir.module.module"].search_count(
                [("name", "=", "subscription_flex_portal"), ("state", "=", "installed")]
            )
        )

    def _probe_field(self, record):
        """A stored, plain field everyone who may read the record may read."""
        plain = ("char", "integer", "float", "monetary", "boolean", "date", "selection")
        for name, field in record._fields.items():
            if (
                field.store
                and field.type in plain
                and not (field.compute or field.related or field.groups or field.automatic)
            ):
                return name
        return "id"

    def _attempt(self, operation):
        """Run ``operation`` in a savepoint rolled back afterwards. Returns "ok",
        "denied" (AccessError) or "refused" (a business error: not an access answer)."""
        try:
            # a refused unlink (a restricting foreign key) is logged as a "bad query"
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                operation()
                self.env.flush_all()
                raise _Rollback
        except _Rollback:
            return "ok"
        except AccessError:
            return "denied"
        except (UserError, ValidationError, psycopg2.IntegrityError):
            return "refused"
        finally:
            self.env.invalidate_all(flush=False)

    def _check(self, record, operation):
        return self._attempt(lambda: record.check_access(operation))

    def _do(self, record, operation, field):
        if operation == "read":
            return self._attempt(lambda: record.read([field]))
        if operation == "write":
            value = record._fields[field].convert_to_write(record.sudo()[field], record)
            return self._attempt(lambda: record.write({field: value}))
        if operation == "unlink":
            return self._attempt(record.unlink)
        return None  # create: check_access("create") on the record is the answer

    def _mismatches(self, model, role):
        user = self.users[role]
        allowed = self._expected(model, role)
        mismatches = []
        if self.env[model]._transient:
            for letter, operation in OPERATIONS.items():
                got = self.env[model].with_user(user).has_access(operation)
                if got != (letter in allowed):
                    mismatches.append(f"{model} {role} {operation}: allowed={got}")
            return mismatches
        record = self.records[model].with_user(user)
        field = self._probe_field(record)
        for letter, operation in OPERATIONS.items():
            want = "ok" if letter in allowed else "denied"
            checked = self._check(record, operation)
            done = self._do(record, operation, field)
            if want == "ok" and done == "refused":
                done = "ok"  # allowed, then refused by a business rule
            got = {checked} | ({done} if done else set())
            if got != {want}:
                mismatches.append(
                    f"{model} {role} {operation}: want {want}, check_access {checked}"
                    + (f", real call {done}" if done else "")
                )
        return mismatches

    # -------------------------------------------------------------------- tests

    def test_every_model_has_an_entry(self):
        models = {
            name
            for name, model in self.env.registry.items()
            if model._original_module in ADDONS and not model._abstract
        }
        self.assertEqual(
            sorted(models - EXPECTED.keys()), [], "models without an entry in EXPECTED"
        )
        self.assertEqual(sorted(EXPECTED.keys() - models), [], "entries of no model")
        for model, rights in EXPECTED.items():
            self.assertEqual(set(rights), set(ROLES), model)
            self.assertTrue(set("".join(rights.values())) <= set(OPERATIONS), model)

    def test_matrix(self):
        mismatches = []
        for model in sorted(EXPECTED):
            for role in ROLES:
                mismatches.extend(self._mismatches(model, role))
        self.assertFalse(mismatches, "\n" + "\n".join(mismatches))

    def test_other_company_finds_nothing(self):
        """Record rules also keep the first company's records out of searches."""
        user = self.users["other_company"]
        for model, record in self.records.items():
            if "r" in EXPECTED[model]["other_company"]:
                continue  # shared configuration
            found = self.env[model].with_user(user).search([("id", "=", record.id)])
            self.assertFalse(found, f"{model}: another company's user finds the record")
