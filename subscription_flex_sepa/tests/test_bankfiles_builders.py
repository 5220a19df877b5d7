"""The test bank-file builders write files the official XSDs accept, with the right values.

Plain unittest, no Odoo: run with pytest -p no:odoo (no database needed).
"""

import unittest
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

from .bankfiles import NAMESPACE, camt053, camt054, pain002

XSD_DIR = Path(__file__).resolve().parent.parent / "data" / "xsd"
CAMT053 = ("camt.053.001.02", "camt.053.001.08")
CAMT054 = ("camt.054.001.02", "camt.054.001.08")
PAIN002 = ("pain.002.001.03", "pain.002.001.10")
IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"
DAY = date(2027, 3, 8)

BATCH = {
    "kind": "batch",
    "amount": Decimal("150.50"),
    "date": DAY,
    "ref": "BANKREF-1",
    "msg_id": "SDD-2027-0001",
    "pmt_inf_id": "SDD-2027-0001-CORE",
    "count": 2,
    "details": None,
}
DETAILS = [
    {
        "end_to_end_id": "E2E-1",
        "amount": Decimal("100"),
        "mandate_id": "MNDT-1",
        "debtor_name": "Müller & Söhne <GmbH>",
        "debtor_iban": DEBTOR_IBAN,
    },
    {"end_to_end_id": "E2E-2", "amount": Decimal("50.5")},
]
CREDIT = {
    "kind": "credit",
    "amount": Decimal("42.00"),
    "date": DAY,
    "ref": "BANKREF-2",
    "end_to_end_id": "E2E-3",
    "pmt_inf_id": "SDD-2027-0001-CORE",
    "msg_id": "SDD-2027-0001",
    "mandate_id": "MNDT-3",
    "debtor_name": "Jane Doe",
    "debtor_iban": DEBTOR_IBAN,
}
RETURN = {
    "kind": "return",
    "amount": Decimal("100.00"),
    "fee": Decimal("3.50"),
    "date": date(2027, 3, 9),
    "ref": "BANKREF-3",
    "end_to_end_id": "E2E-1",
    "reason": "AM04",
    "mandate_id": "MNDT-1",
    "debtor_name": "Müller & Söhne <GmbH>",
    "info": "Insufficient funds",
}
RETURN_NO_FEE = {**RETURN, "fee": Decimal("0"), "ref": None, "reversal": False, "info": None}
OTHER_CREDIT = {
    "kind": "other",
    "amount": Decimal("999.99"),
    "sign": "CRDT",
    "date": DAY,
    "ref": "BANKREF-4",
    "info": "Invoice INV/2027/0042",
    "end_to_end_id": "NOTPROVIDED",
}
OTHER_CHARGE = {
    "kind": "other",
    "amount": Decimal("7.5"),
    "sign": "DBIT",
    "date": DAY,
    "ref": "BANKREF-5",
    "info": "Account fee March",
}
CAMT_CASES = {
    "batch": [BATCH],
    "batch with details": [{**BATCH, "details": DETAILS}],
    "credit": [CREDIT],
    "return with fee": [RETURN],
    "return without fee": [RETURN_NO_FEE],
    "other": [OTHER_CREDIT, OTHER_CHARGE],
    "no entry": [],
}
REJECTS = [
    {
        "pmt_inf_id": "PMT-A",
        "end_to_end_id": "E2E-1",
        "status": "RJCT",
        "reason": "AM04",
        "amount": Decimal("100"),
        "collection_date": DAY,
        "mandate_id": "MNDT-1",
        "debtor_name": "Müller & Söhne <GmbH>",
        "debtor_iban": DEBTOR_IBAN,
        "tx_id": "BANK-TX-1",
    },
    {
        "pmt_inf_id": "PMT-B",
        "end_to_end_id": "E2E-2",
        "status": "RJCT",
        "reason": "MD01",
        "amount": Decimal("20.1"),
        "collection_date": DAY,
    },
    {
        "pmt_inf_id": "PMT-A",
        "end_to_end_id": "E2E-3",
        "status": "RJCT",
        "reason": "AC04",
        "amount": Decimal("5"),
        "collection_date": DAY,
    },
]


class TestBankfileBuilders(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.schemas = {}

    def schema(self, version):
        if version not in self.schemas:
            self.schemas[version] = etree.XMLSchema(etree.parse(str(XSD_DIR / f"{version}.xsd")))
        return self.schemas[version]

    def valid(self, version, data):
        """``data`` parsed, after checking it is a valid ``version`` file."""
        self.assertIsInstance(data, bytes)
        self.assertTrue(data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'))
        doc = etree.fromstring(data)
        self.assertEqual(doc.tag, f"{{{NAMESPACE}{version}}}Document")
        schema = self.schema(version)
        if not schema.validate(doc):
            self.fail(f"{version} invalid:\n{schema.error_log}\n{data.decode()}")
        return doc

    def values(self, doc, path):
        """Texts at ``path`` (XPath with every step in the document's namespace as ``d:``)."""
        return [str(value) for value in doc.xpath(path, namespaces={"d": doc.nsmap[None]})]

    def value(self, doc, path):
        found = self.values(doc, path)
        self.assertEqual(len(found), 1, f"{path}: {found}")
        return found[0]

    # ------------------------------------------------------------ validity

    def test_camt053_every_case_validates(self):
        for version in CAMT053:
            for name, entries in CAMT_CASES.items():
                with self.subTest(version=version, case=name):
                    self.valid(version, camt053(version, IBAN, entries))

    def test_camt054_every_case_validates(self):
        for version in CAMT054:
            for name, entries in CAMT_CASES.items():
                with self.subTest(version=version, case=name):
                    self.valid(version, camt054(version, IBAN, entries))
            with self.subTest(version=version, case="returns and credits"):
                doc = self.valid(
                    version, camt054(version, IBAN, [CREDIT, RETURN, RETURN_NO_FEE, CREDIT])
                )
                self.assertEqual(
                    self.values(doc, "//d:Ntry/d:CdtDbtInd/text()"),
                    ["CRDT", "DBIT", "DBIT", "CRDT"],
                )
                self.assertFalse(doc.xpath("//d:Bal", namespaces={"d": doc.nsmap[None]}))

    def test_pain002_every_case_validates(self):
        cases = {
            "transaction rejects": {"transactions": REJECTS, "group_status": "PART"},
            "payment info reject": {
                "transactions": [],
                "payment_infos": [{"pmt_inf_id": "PMT-A", "status": "RJCT", "reason": "MS03"}],
            },
            "group reject": {"transactions": [], "group_status": "RJCT", "group_reason": "FF01"},
            "accepted": {"transactions": [], "group_status": "ACCP"},
            "block and transactions": {
                "transactions": REJECTS,
                "payment_infos": [{"pmt_inf_id": "PMT-B", "status": "PART", "reason": "NARR"}],
            },
        }
        for version in PAIN002:
            for name, kwargs in cases.items():
                with self.subTest(version=version, case=name):
                    self.valid(version, pain002(version, "SDD-2027-0001", **kwargs))

    # ------------------------------------------------------------ values

    def test_camt_entry_values(self):
        amount_paths = {  # where each version puts a transaction's charges and party name
            "camt.053.001.02": ("d:Chrgs/d:Amt", "d:RltdPties/d:Dbtr/d:Nm"),
            "camt.053.001.08": ("d:Chrgs/d:Rcrd/d:Amt", "d:RltdPties/d:Dbtr/d:Pty/d:Nm"),
        }
        for version in CAMT053:
            charges, debtor = amount_paths[version]
            entries = [{**BATCH, "details": DETAILS}, RETURN, OTHER_CHARGE]
            doc = self.valid(version, camt053(version, IBAN, entries))
            batch, ret, charge = doc.xpath("//d:Ntry", namespaces={"d": doc.nsmap[None]})
            with self.subTest(version=version, entry="batch"):
                self.assertEqual(self.value(batch, "d:Amt/text()"), "150.50")
                self.assertEqual(self.value(batch, "d:Amt/@Ccy"), "EUR")
                self.assertEqual(self.value(batch, "d:AcctSvcrRef/text()"), "BANKREF-1")
                self.assertEqual(self.value(batch, "d:BookgDt/d:Dt/text()"), "2027-03-08")
                self.assertEqual(self.value(batch, ".//d:Fmly/d:SubFmlyCd/text()"), "ESDD")
                btch = "d:NtryDtls/d:Btch/"
                self.assertEqual(self.value(batch, btch + "d:TtlAmt/text()"), "150.50")
                self.assertEqual(self.value(batch, btch + "d:NbOfTxs/text()"), "2")
                self.assertEqual(
                    self.value(batch, btch + "d:PmtInfId/text()"), "SDD-2027-0001-CORE"
                )
                txs = "d:NtryDtls/d:TxDtls/"
                self.assertEqual(
                    self.values(batch, txs + "d:Refs/d:EndToEndId/text()"), ["E2E-1", "E2E-2"]
                )
                self.assertEqual(self.values(batch, txs + "d:Refs/d:MndtId/text()"), ["MNDT-1"])
                self.assertEqual(
                    self.values(batch, txs + "d:AmtDtls/d:TxAmt/d:Amt/text()"), ["100.00", "50.50"]
                )
                self.assertEqual(
                    self.value(batch, txs + debtor + "/text()"), "Müller & Söhne <GmbH>"
                )
                self.assertEqual(
                    self.value(batch, txs + "d:RltdPties/d:DbtrAcct/d:Id/d:IBAN/text()"),
                    DEBTOR_IBAN,
                )
                expected_tx_amounts = ["100.00", "50.50"] if version.endswith("08") else []
                self.assertEqual(self.values(batch, txs + "d:Amt/text()"), expected_tx_amounts)
            with self.subTest(version=version, entry="return"):
                self.assertEqual(self.value(ret, "d:Amt/text()"), "103.50")
                self.assertEqual(self.value(ret, "d:CdtDbtInd/text()"), "DBIT")
                self.assertEqual(self.value(ret, "d:RvslInd/text()"), "true")
                self.assertEqual(self.value(ret, ".//d:Fmly/d:SubFmlyCd/text()"), "UPDD")
                tx = "d:NtryDtls/d:TxDtls/"
                self.assertEqual(self.value(ret, tx + "d:Refs/d:EndToEndId/text()"), "E2E-1")
                self.assertEqual(
                    self.value(ret, tx + "d:AmtDtls/d:InstdAmt/d:Amt/text()"), "100.00"
                )
                self.assertEqual(self.value(ret, tx + "d:AmtDtls/d:TxAmt/d:Amt/text()"), "103.50")
                self.assertEqual(self.value(ret, tx + charges + "/text()"), "3.50")
                self.assertEqual(self.value(ret, tx + "d:RtrInf/d:Rsn/d:Cd/text()"), "AM04")
                self.assertEqual(
                    self.value(ret, tx + "d:RtrInf/d:AddtlInf/text()"), "Insufficient funds"
                )
                self.assertEqual(self.values(ret, "d:AddtlNtryInf/text()"), [])
            with self.subTest(version=version, entry="other"):
                self.assertEqual(self.value(charge, "d:Amt/text()"), "7.50")
                self.assertEqual(self.value(charge, "d:AddtlNtryInf/text()"), "Account fee March")
                self.assertEqual(
                    self.value(charge, ".//d:RmtInf/d:Ustrd/text()"), "Account fee March"
                )
                self.assertEqual(self.values(charge, ".//d:Refs"), [])
            sts = "d:Sts/d:Cd/text()" if version.endswith("08") else "d:Sts/text()"
            self.assertEqual(self.values(doc, "//d:Ntry/" + sts), ["BOOK"] * 3)
            bic = "BICFI" if version.endswith("08") else "BIC"
            self.assertEqual(
                self.value(doc, f"//d:Acct/d:Svcr/d:FinInstnId/d:{bic}/text()"), "COBADEFFXXX"
            )

    def test_return_without_fee_or_reversal(self):
        for version in CAMT053:
            with self.subTest(version=version):
                doc = self.valid(version, camt053(version, IBAN, [RETURN_NO_FEE]))
                self.assertEqual(self.value(doc, "//d:Ntry/d:Amt/text()"), "100.00")
                for absent in ("RvslInd", "AcctSvcrRef", "Chrgs", "AddtlInf", "AddtlNtryInf"):
                    self.assertEqual(self.values(doc, f"//d:{absent}"), [], absent)

    def test_mixed_statement_balances(self):
        entries = [
            {**BATCH, "details": DETAILS},
            CREDIT,
            RETURN,
            RETURN_NO_FEE,
            {**OTHER_CHARGE, "date": date(2027, 3, 10)},
        ]
        for version in CAMT053:
            with self.subTest(version=version):
                doc = self.valid(
                    version, camt053(version, IBAN, entries, opening=Decimal("-10.00"))
                )
                # -10 + 150.50 + 42 - 103.50 - 100 - 7.50 = -28.50
                bal = "//d:Bal[d:Tp/d:CdOrPrtry/d:Cd='{}']/"
                self.assertEqual(self.value(doc, bal.format("OPBD") + "d:Amt/text()"), "10.00")
                self.assertEqual(self.value(doc, bal.format("OPBD") + "d:CdtDbtInd/text()"), "DBIT")
                self.assertEqual(self.value(doc, bal.format("CLBD") + "d:Amt/text()"), "28.50")
                self.assertEqual(self.value(doc, bal.format("CLBD") + "d:CdtDbtInd/text()"), "DBIT")
                self.assertEqual(self.values(doc, "//d:Bal/d:Dt/d:Dt/text()"), ["2027-03-10"] * 2)
                self.assertEqual(
                    self.values(doc, "//d:Ntry/d:Amt/text()"),
                    ["150.50", "42.00", "103.50", "100.00", "7.50"],
                )

    def test_empty_statement_dated_on_creation(self):
        for version in CAMT053:
            with self.subTest(version=version):
                data = camt053(version, IBAN, [], created=datetime(2027, 4, 1, 6, 30))
                doc = self.valid(version, data)
                self.assertEqual(self.values(doc, "//d:Bal/d:Dt/d:Dt/text()"), ["2027-04-01"] * 2)
                self.assertEqual(
                    self.value(doc, "//d:GrpHdr/d:CreDtTm/text()"), "2027-04-01T06:30:00"
                )

    def test_pain002_values(self):
        payment_infos = [{"pmt_inf_id": "PMT-C", "status": "RJCT", "reason": "MS03"}]
        for version in PAIN002:
            debtor = "d:Dbtr/d:Pty/d:Nm" if version.endswith("10") else "d:Dbtr/d:Nm"
            with self.subTest(version=version, case="transactions"):
                doc = self.valid(
                    version,
                    pain002(version, "SDD-2027-0001", REJECTS, payment_infos=payment_infos),
                )
                self.assertEqual(self.value(doc, "//d:OrgnlMsgId/text()"), "SDD-2027-0001")
                self.assertEqual(self.value(doc, "//d:OrgnlMsgNmId/text()"), "pain.008.001.08")
                self.assertEqual(self.values(doc, "//d:GrpSts"), [])
                self.assertEqual(
                    self.values(doc, "//d:OrgnlPmtInfAndSts/d:OrgnlPmtInfId/text()"),
                    ["PMT-C", "PMT-A", "PMT-B"],
                )
                block = "//d:OrgnlPmtInfAndSts[d:OrgnlPmtInfId='{}']/"
                self.assertEqual(
                    self.value(doc, block.format("PMT-C") + "d:PmtInfSts/text()"), "RJCT"
                )
                self.assertEqual(
                    self.value(doc, block.format("PMT-C") + "d:StsRsnInf/d:Rsn/d:Cd/text()"), "MS03"
                )
                self.assertEqual(self.values(doc, block.format("PMT-C") + "d:TxInfAndSts"), [])
                self.assertEqual(
                    self.values(
                        doc, block.format("PMT-A") + "d:TxInfAndSts/d:OrgnlEndToEndId/text()"
                    ),
                    ["E2E-1", "E2E-3"],
                )
                tx = block.format("PMT-A") + "d:TxInfAndSts[d:OrgnlEndToEndId='E2E-1']/"
                self.assertEqual(self.value(doc, tx + "d:StsId/text()"), "BANK-TX-1")
                self.assertEqual(self.value(doc, tx + "d:TxSts/text()"), "RJCT")
                self.assertEqual(self.value(doc, tx + "d:StsRsnInf/d:Rsn/d:Cd/text()"), "AM04")
                ref = tx + "d:OrgnlTxRef/"
                self.assertEqual(self.value(doc, ref + "d:Amt/d:InstdAmt/text()"), "100.00")
                self.assertEqual(self.value(doc, ref + "d:Amt/d:InstdAmt/@Ccy"), "EUR")
                self.assertEqual(self.value(doc, ref + "d:ReqdColltnDt/text()"), "2027-03-08")
                self.assertEqual(self.value(doc, ref + "d:MndtRltdInf/d:MndtId/text()"), "MNDT-1")
                self.assertEqual(self.value(doc, ref + debtor + "/text()"), "Müller & Söhne <GmbH>")
                self.assertEqual(
                    self.value(doc, ref + "d:DbtrAcct/d:Id/d:IBAN/text()"), DEBTOR_IBAN
                )
                self.assertEqual(
                    self.values(doc, "//d:TxInfAndSts/d:StsId/text()"),
                    ["BANK-TX-1", "STS-1-2", "STS-1-3"],
                )
                self.assertEqual(
                    self.values(doc, "//d:OrgnlTxRef/d:Amt/d:InstdAmt/text()"),
                    ["100.00", "5.00", "20.10"],
                )
            with self.subTest(version=version, case="group reject"):
                doc = self.valid(
                    version,
                    pain002(version, "SDD-X", [], group_status="RJCT", group_reason="FF01"),
                )
                self.assertEqual(self.value(doc, "//d:OrgnlGrpInfAndSts/d:GrpSts/text()"), "RJCT")
                self.assertEqual(
                    self.value(doc, "//d:OrgnlGrpInfAndSts/d:StsRsnInf/d:Rsn/d:Cd/text()"), "FF01"
                )
                self.assertEqual(self.values(doc, "//d:OrgnlPmtInfAndSts"), [])

    def test_unknown_version_or_kind(self):
        with self.assertRaises(ValueError):
            camt053("camt.054.001.08", IBAN, [])
        with self.assertRaises(ValueError):
            camt054("camt.054.001.04", IBAN, [])
        with self.assertRaises(ValueError):
            pain002("pain.002.001.02", "X", [])
        with self.assertRaises(ValueError):
            camt053("camt.053.001.08", IBAN, [{"kind": "fee", "date": DAY}])
