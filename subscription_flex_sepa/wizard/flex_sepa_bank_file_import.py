import base64

from odoo import fields, models


class FlexSepaBankFileImport(models.TransientModel):
    _name = "flex.sepa.bank.file.import"
    _description = "Import a SEPA Bank File"

    data_file = fields.Binary(string="Bank File", required=True)
    filename = fields.Char()

    def action_import(self):
        """Import the file (``flex.sepa.bank.file._import_file``) and show what it did."""
        self.ensure_one()
        bank_file = self.env["flex.sepa.bank.file"]._import_file(
            base64.b64decode(self.data_file), filename=self.filename
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": "flex.sepa.bank.file",
            "res_id": bank_file.id,
            "view_mode": "form",
            "target": "current",
        }
