{
    "name": "Flexible Subscriptions: Customer Portal",
    "summary": "Customers see, change and cancel their subscriptions in the portal",
    "version": "18.0.1.0.0",
    "category": "Sales/Subscriptions",
    "website": "https://github.com/subscription-flex/subscription_flex",
    "author": "subscription_flex developers",
    "maintainers": ["subscription-flex"],
    "license": "AGPL-3",
    "development_status": "Alpha",
    "installable": True,
    # SEPA (subscription_flex_sepa) is optional: the controller and the templates use
    # its mandates only when the model is installed.
    "depends": ["subscription_flex", "portal", "account_payment"],
    "data": [
        "security/ir.model.access.csv",
        "security/subscription_flex_portal_security.xml",
        "views/flex_plan_views.xml",
        "views/flex_subscription_templates.xml",
        "views/flex_subscription_change_templates.xml",
        "views/flex_sepa_mandate_templates.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "subscription_flex_portal/static/tests/tours/*.js",
        ],
    },
}
