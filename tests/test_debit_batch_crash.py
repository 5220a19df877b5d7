"""A SEPA debit batch killed with SIGKILL while its file and payments are being made, then
generated again: one file, one payment per invoice, nothing left of the killed attempt.

A second process (real Python, Odoo as a library) runs ``action_generate`` on a committed,
collected batch of 200 direct-debit invoices and is killed while its transaction is open
(payments being created and posted). Afterwards the batch is still a draft with no file, no
payment of it exists, no invoice is in payment, no mandate counted a debit; generated again,
it has one file, 200 payments in process (one per invoice, its amount) and every invoice in
payment.
"""

import textwrap
import uuid
from datetime import timedelta

from faults import german_iban, kill_in_transaction, start_script

import odoo
from odoo import SUPERUSER_ID, Command, api, fields
from odoo.modules.registry import Registry

DEBTORS = 200

GENERATE = textwrap.dedent(
    """
    import sys
    import time
    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-c", sys.argv[1], "-d", sys.argv[2], "--log-level=warn"])
    registry = Registry(sys.argv[2])

    from odoo.addons.subscription_flex_sepa.models.flex_sepa_batch import FlexSepaBatch

    create_payments = FlexSepaBatch._create_payments

    def _create_payments(self, journal):
        # The file attached, the payments posted and reconciled in the database, the
        # transaction still open (lines, mandates, mails and the commit to come): the
        # test kills here.
        result = create_payments(self, journal)
        self.env.flush_all()
        print("written", flush=True)
        time.sleep(120)
        return result

    FlexSepaBatch._create_payments = _create_payments
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        print("generating", flush=True)
        env["flex.sepa.batch"].browse(int(sys.argv[3])).action_generate()
        env.flush_all()
    print("done", flush=True)
    """
)


def _seed(registry, tag):
    """DEBTORS customers with a valid mandate and a direct-debit subscription, invoiced,
    and a batch that collected their invoices (committed); returns (batch id, invoice ids)."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        eur = env.ref("base.EUR")
        product = env["product.product"].create(
            {
                "name": f"Debit seat {tag}",
                "type": "service",
                "flex_is_subscription": True,
                "lst_price": 12.5,
                "taxes_id": [Command.clear()],
            }
        )
        plan = env["flex.plan"].create({"name": f"Debits {tag}", "invoicing_mode": "post"})
        partners = env["res.partner"].create(
            [{"name": f"Debtor {tag} {i}"} for i in range(DEBTORS)]
        )
        base = int(uuid.uuid4().int % 10**9)
        accounts = env["res.partner.bank"].create(
            [
                {"acc_number": german_iban(base + i), "partner_id": partner.id}
                for i, partner in enumerate(partners)
            ]
        )
        mandates = env["flex.sepa.mandate"].create(
            [
                {
                    "partner_id": partner.id,
                    "partner_bank_id": account.id,
                    "signature_date": fields.Date.today(),
                }
                for partner, account in zip(partners, accounts, strict=True)
            ]
        )
        mandates.action_validate()
        start = fields.Date.today()
        subs = env["flex.subscription"].create(
            [
                {
                    "partner_id": partner.id,
                    "plan_id": plan.id,
                    "start_date": start,
                    "currency_id": eur.id,
                    "payment_method": "sepa",
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "quantity": 1 + i % 3,
                                "price_unit": 12.5,
                                "price_overridden": True,
                            }
                        )
                    ],
                }
                for i, partner in enumerate(partners)
            ]
        )
        subs.action_confirm()
        subs._create_recurring_invoices(start)
        invoices = env["account.move"].search([("flex_subscription_id", "in", subs.ids)])
        assert len(invoices) == DEBTORS and set(invoices.mapped("state")) == {"posted"}
        batch = env["flex.sepa.batch"].create({"due_by": start + timedelta(days=60)})
        batch.action_collect()
        mine = batch.line_ids.filtered(lambda line: line.invoice_id in invoices)
        assert len(mine) == DEBTORS
        # Only this test's invoices in the batch (others of the database stay out of it).
        (batch.line_ids - mine).unlink()
        return batch.id, invoices.ids


def _facts(registry, batch_id, invoice_ids):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT state, attachment_id IS NOT NULL FROM flex_sepa_batch WHERE id = %s",
            [batch_id],
        )
        state, has_file = cr.fetchone()
        cr.execute(
            """
            SELECT count(DISTINCT p.id), count(DISTINCT rel.invoice_id),
                   coalesce(sum(p.amount), 0), bool_and(p.state = 'in_process')
              FROM account_payment p
              JOIN account_move__account_payment rel ON rel.payment_id = p.id
             WHERE rel.invoice_id = ANY(%s)
            """,
            [invoice_ids],
        )
        payments, paid_invoices, amount, in_process = cr.fetchone()
        cr.execute(
            "SELECT count(*) FROM account_move WHERE id = ANY(%s) AND payment_state = 'in_payment'",
            [invoice_ids],
        )
        in_payment = cr.fetchone()[0]
        cr.execute(
            "SELECT count(*) FROM flex_sepa_batch_line WHERE batch_id = %s AND state = 'collected'",
            [batch_id],
        )
        collected = cr.fetchone()[0]
        return {
            "state": state,
            "file": has_file,
            "payments": payments,
            "paid_invoices": paid_invoices,
            "amount": round(float(amount), 2),
            "in_process": in_process,
            "in_payment": in_payment,
            "collected": collected,
        }


def test_debit_batch_killed_mid_generation_then_generated_once(tmp_path):
    registry = _registry()
    batch_id, invoice_ids = _seed(registry, uuid.uuid4().hex[:8])
    script = tmp_path / "generate.py"
    script.write_text(GENERATE)
    process = start_script(registry, script, batch_id)
    line = process.stdout.readline()
    assert line.strip() == "generating", (line, process.stderr.read())
    line = process.stdout.readline()  # the payments of the 200 debits written, not committed
    assert line.strip() == "written", (line, process.stderr.read())
    kill_in_transaction(registry, process)
    assert _facts(registry, batch_id, invoice_ids) == {
        "state": "draft",
        "file": False,
        "payments": 0,
        "paid_invoices": 0,
        "amount": 0.0,
        "in_process": None,
        "in_payment": 0,
        "collected": 0,
    }
    # Generated again (the accountant presses the button once more): all of it, once.
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        env["flex.sepa.batch"].browse(batch_id).action_generate()
    # 200 invoices of 12.50 x (1, 2 or 3): 67 x 12.50 + 67 x 25.00 + 66 x 37.50.
    expected = 67 * 12.5 + 67 * 25.0 + 66 * 37.5
    assert _facts(registry, batch_id, invoice_ids) == {
        "state": "generated",
        "file": True,
        "payments": DEBTORS,
        "paid_invoices": DEBTORS,
        "amount": expected,
        "in_process": True,
        "in_payment": DEBTORS,
        "collected": DEBTORS,
    }


def _registry():
    return Registry(odoo.tools.config["db_name"])
