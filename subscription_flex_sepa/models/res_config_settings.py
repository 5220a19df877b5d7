from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    flex_sepa_creditor_id = fields.Char(related="company_id.flex_sepa_creditor_id", readonly=False)
    flex_sepa_scheme = fields.Selection(related="company_id.flex_sepa_scheme", readonly=False)
    flex_sepa_prenotification_days = fields.Integer(
        related="company_id.flex_sepa_prenotification_days", readonly=False
    )
    flex_sepa_pain_version = fields.Selection(
        related="company_id.flex_sepa_pain_version", readonly=False
    )
    flex_sepa_batch_booking = fields.Boolean(
        related="company_id.flex_sepa_batch_booking", readonly=False
    )
    flex_sepa_journal_id = fields.Many2one(
        related="company_id.flex_sepa_journal_id", readonly=False
    )
    flex_sepa_first_sequence = fields.Selection(
        related="company_id.flex_sepa_first_sequence", readonly=False
    )
    flex_sepa_fee_account_id = fields.Many2one(
        related="company_id.flex_sepa_fee_account_id", readonly=False
    )
    flex_sepa_charges_account_id = fields.Many2one(
        related="company_id.flex_sepa_charges_account_id", readonly=False
    )
    flex_sepa_reinvoice_fee = fields.Boolean(
        related="company_id.flex_sepa_reinvoice_fee", readonly=False
    )
    flex_sepa_fee_product_id = fields.Many2one(
        related="company_id.flex_sepa_fee_product_id", readonly=False
    )
    flex_sepa_return_user_id = fields.Many2one(
        related="company_id.flex_sepa_return_user_id", readonly=False
    )
