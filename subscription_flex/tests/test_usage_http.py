import json
from datetime import date, datetime, timedelta

from odoo import Command, fields
from odoo.tests import HttpCase, new_test_user, tagged

URL = "/flex/usage/v1/events"


@tagged("post_install", "-at_install")
class TestUsageHttp(HttpCase):
    """The usage endpoint over real HTTP (Odoo's test server)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.company = env.company
        cls.other_company = env["res.company"].create({"name": "Flex HTTP Rival"})
        cls.product = env["product.product"].create(
            {
                "name": "HTTP calls",
                "default_code": "HTTP-CALLS",
                "type": "service",
                "flex_is_subscription": True,
                "flex_metered": True,
                "taxes_id": [Command.clear()],
            }
        )
        cls.plan = env["flex.plan"].create({"name": "HTTP plan"})
        partner = env["res.partner"].create({"name": "HTTP customer"})
        start = fields.Date.today() - timedelta(days=40)
        cls.sub = env["flex.subscription"].create(
            {
                "partner_id": partner.id,
                "plan_id": cls.plan.id,
                "start_date": start,
                "line_ids": [Command.create({"product_id": cls.product.id, "quantity": 1})],
            }
        )
        cls.sub.action_confirm()
        cls.other_sub = env["flex.subscription"].create(
            {
                "partner_id": partner.id,
                "plan_id": cls.plan.id,
                "start_date": start,
                "company_id": cls.other_company.id,
                "line_ids": [Command.create({"product_id": cls.product.id, "quantity": 1})],
            }
        )
        cls.other_sub.action_confirm()
        cls.api_user = new_test_user(
            env,
            login="flex_api",
            groups="subscription_flex.group_flex_user",
            company_id=cls.company.id,
            company_ids=[(6, 0, cls.company.ids)],
        )
        cls.key = (
            env["res.users.apikeys"]
            .with_user(cls.api_user)
            ._generate(None, "usage feed", datetime.now() + timedelta(days=1))
        )
        cls.plain_user = new_test_user(env, login="flex_api_plain", groups="base.group_user")
        cls.plain_key = (
            env["res.users.apikeys"]
            .with_user(cls.plain_user)
            ._generate(None, "no rights", datetime.now() + timedelta(days=1))
        )

    def _post(self, body, key=None, raw=False):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = body if raw else json.dumps(body)
        return self.url_open(URL, data=data, headers=headers)

    def _event(self, key, sub=None, quantity=2):
        return {
            "subscription": (sub or self.sub).name,
            "product": "HTTP-CALLS",
            "quantity": quantity,
            "time": (date.today() - timedelta(days=1)).isoformat(),
            "key": key,
        }

    def _count(self, **domain):
        return self.env["flex.usage"].search_count(
            [("subscription_id", "in", (self.sub | self.other_sub).ids)]
            + [(k, "=", v) for k, v in domain.items()]
        )

    def test_accepts_and_deduplicates_over_http(self):
        response = self._post({"events": [self._event("h1"), self._event("h2")]}, self.key)
        self.assertEqual(response.status_code, 200, response.text)
        body = response.json()
        self.assertEqual((body["accepted"], body["duplicates"], body["rejected"]), (2, 0, 0))
        again = self._post(
            {"events": [self._event("h1"), self._event("h3", quantity=-1)]}, self.key
        ).json()
        self.assertEqual([r["status"] for r in again["results"]], ["duplicate", "rejected"])
        self.assertIn("Negative", again["results"][1]["reason"])
        self.assertEqual(self._count(), 2)
        usage = self.env["flex.usage"].search([("key", "=", "h1")])
        self.assertEqual(
            (usage.quantity, usage.source, usage.create_uid), (2.0, "api", self.api_user)
        )

    def test_duplicates_across_paths(self):
        """A key first recorded by the Python batch, then by an import, is a duplicate over
        HTTP, and the other way round."""
        Usage = self.env["flex.usage"]
        Usage._ingest([self._event("from-batch")])
        Usage.with_context(import_file=True).load(
            ["subscription_id", "product_id", "quantity", "event_time", "key"],
            [
                [
                    self.sub.name,
                    "HTTP calls",
                    "2",
                    fields.Datetime.to_string(datetime.now() - timedelta(days=1)),
                    "from-import",
                ]
            ],
        )
        body = self._post(
            {
                "events": [
                    self._event("from-batch"),
                    self._event("from-import"),
                    self._event("from-http"),
                ]
            },
            self.key,
        ).json()
        self.assertEqual(
            [r["status"] for r in body["results"]], ["duplicate", "duplicate", "accepted"]
        )
        self.assertEqual(Usage._ingest([self._event("from-http")])["duplicates"], 1)
        self.assertEqual(self._count(), 3)

    def test_authentication(self):
        event = {"events": [self._event("auth")]}
        self.assertEqual(self._post(event).status_code, 401)
        self.assertEqual(self._post(event, "not-a-key").status_code, 401)
        forbidden = self._post(event, self.plain_key)
        self.assertEqual(forbidden.status_code, 403)
        self.assertIn("Subscriptions / User", forbidden.json()["error"])
        self.assertEqual(self._count(), 0)

    def test_other_company_subscription_is_unknown(self):
        body = self._post({"events": [self._event("x", sub=self.other_sub)]}, self.key).json()
        self.assertEqual(body["results"][0]["status"], "rejected")
        self.assertEqual(body["results"][0]["reason"], "Unknown subscription.")
        self.assertEqual(self._count(), 0)

    def test_malformed_bodies_write_nothing(self):
        cases = [
            (b"{not json", "not valid JSON"),
            (json.dumps([1, 2]), '"events" list'),
            (json.dumps({"events": {}}), '"events" list'),
            (json.dumps({"events": []}), "empty"),
            (json.dumps({"events": [self._event(f"k{i}") for i in range(1001)]}), "At most 1000"),
        ]
        for raw, message in cases:
            response = self._post(raw, self.key, raw=True)
            self.assertEqual(response.status_code, 400, message)
            self.assertIn(message, response.json()["error"])
        too_big = self._post(b'{"events": ["' + b"x" * (1024 * 1024) + b'"]}', self.key, raw=True)
        self.assertEqual(too_big.status_code, 413)
        self.assertEqual(self._count(), 0)
