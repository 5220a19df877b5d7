import json
import logging

from odoo import http
from odoo.exceptions import AccessError
from odoo.http import request

_logger = logging.getLogger(__name__)

MAX_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: 1,000 events of ~1 KiB each


class UsageApi(http.Controller):
    """``POST /flex/usage/v1/events`` — usage events from the customer's systems.

    Authenticated with an Odoo API key (``Authorization: Bearer <key>``); the key's
    user needs the *Subscriptions / User* group and sees only its companies'
    subscriptions. Body: ``{"events": [{"subscription": "SUB/00001", "product":
    "API-CALLS", "quantity": 3, "time": "2026-11-25T10:00:00Z", "key": "evt-1"}]}``
    (at most 1,000 events, 1 MiB). Answer: ``{"accepted": n, "duplicates": n,
    "rejected": n, "results": [{"index", "key", "status", "reason"}]}``. A malformed
    body gets a 400 with a message and writes nothing; a retried batch is safe.
    """

    @http.route(
        "/flex/usage/v1/events",
        type="http",
        auth="bearer",
        methods=["POST"],
        csrf=False,
        save_session=False,
    )
    def post_events(self, **_kwargs):
        # Cached: after a serialization failure (two deliveries of the same keys at
        # once) Odoo runs the request again, which must read the same body, not an
        # empty one (a 400 for a batch that was never recorded).
        body = request.httprequest.get_data(as_text=False)
        if len(body) > MAX_BODY_BYTES:
            return self._error(
                413,
                request.env._(
                    "The body is larger than %(max)s bytes; send smaller batches.",
                    max=MAX_BODY_BYTES,
                ),
            )
        try:
            payload = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):  # Recursion: [[[[...]]]]
            return self._error(400, request.env._("The body is not valid JSON."))
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            return self._error(
                400, request.env._('The body must be an object with an "events" list.')
            )
        if not events:
            return self._error(400, request.env._("The events list is empty."))
        if len(events) > MAX_EVENTS:
            return self._error(
                400,
                request.env._(
                    "At most %(max)s events per request (got %(count)s).",
                    max=MAX_EVENTS,
                    count=len(events),
                ),
            )
        try:
            result = request.env["flex.usage"]._ingest(events, source="api")
        except AccessError:
            return self._error(
                403,
                request.env._(
                    "This API key's user may not record usage (Subscriptions / User is needed)."
                ),
            )
        return self._json(result, 200)

    def _error(self, status, message):
        return self._json({"error": message}, status)

    def _json(self, data, status):
        # Not make_json_response: it counts Content-Length in characters (a body cut short
        # when an echoed key is not ASCII) and cannot encode a lone surrogate a client
        # sent as "\ud800". ASCII JSON escapes both and gives the client its keys back.
        return request.make_response(
            json.dumps(data),
            headers=[("Content-Type", "application/json; charset=utf-8")],
            status=status,
        )
