/** @odoo-module **/

import { registry } from "@web/core/registry";

// These tours rely on the data of subscription_flex_portal/tests/test_portal_tours.py:
// one running monthly subscription "Team Monthly" with 5 seats.

function openSubscription() {
    return [
        {
            content: "open the subscription from the list",
            trigger: ".o_flex_portal_row a",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the subscription page shows the plan",
            trigger: ".o_flex_portal_subscription:contains(Team Monthly)",
        },
    ];
}

function previewAndConfirm() {
    return [
        {
            content: "ask for the preview",
            trigger: ".o_flex_portal_preview_btn",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "confirm the previewed change",
            trigger: ".o_flex_portal_confirm",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the change is done",
            trigger: ".o_flex_portal_done",
        },
    ];
}

registry.category("web_tour.tours").add("flex_portal_add_seat", {
    url: "/my/subscriptions",
    steps: () => [
        ...openSubscription(),
        {
            content: "change the number of seats",
            trigger: "tr[data-product='Portal Seat'] .o_flex_portal_change_qty",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "one seat more",
            trigger: "input[name=quantity]",
            run: "edit 6",
        },
        {
            content: "ask for the preview",
            trigger: ".o_flex_portal_preview_btn",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the preview shows the prorated total before confirming",
            trigger: ".o_flex_portal_preview .o_flex_change_total",
        },
        {
            content: "confirm",
            trigger: ".o_flex_portal_confirm",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the prorated invoice is shown, payable online",
            trigger: ".o_flex_portal_document .o_flex_portal_pay",
        },
        {
            content: "back to the subscription",
            trigger: ".o_flex_portal_back",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "six seats now",
            trigger: "tr[data-product='Portal Seat'] .o_flex_portal_qty:contains(6)",
        },
    ],
});

registry.category("web_tour.tours").add("flex_portal_switch_yearly", {
    url: "/my/subscriptions",
    steps: () => [
        ...openSubscription(),
        {
            content: "switch to yearly billing",
            trigger: ".o_flex_portal_switch[data-plan='Team Yearly']",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the yearly plan is chosen",
            trigger: "input[name=plan_id]:checked",
        },
        {
            content: "ask for the preview",
            trigger: ".o_flex_portal_preview_btn",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the preview shows the credit and the yearly charge",
            trigger: ".o_flex_portal_preview .o_flex_change_lines tbody tr:nth-child(2)",
        },
        {
            content: "confirm",
            trigger: ".o_flex_portal_confirm",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the invoice of the year is shown",
            trigger: ".o_flex_portal_document .o_flex_portal_pay",
        },
        {
            content: "back to the subscription",
            trigger: ".o_flex_portal_back",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the subscription is on the yearly plan",
            trigger: ".o_flex_portal_subscription:contains(Team Yearly)",
        },
    ],
});

registry.category("web_tour.tours").add("flex_portal_cancel_undo", {
    url: "/my/subscriptions",
    steps: () => [
        ...openSubscription(),
        {
            content: "cancel",
            trigger: ".o_flex_portal_cancel",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "pick a reason",
            trigger: "select[name=reason_id]",
            run: "selectByLabel Too expensive (tours)",
        },
        {
            content: "ask for the preview",
            trigger: ".o_flex_portal_preview_btn",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the preview says when the service ends",
            trigger: ".o_flex_portal_end_sentence",
        },
        {
            content: "confirm",
            trigger: ".o_flex_portal_confirm",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "back to the subscription",
            trigger: ".o_flex_portal_back",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "the end date is shown; undo the cancellation",
            trigger: ".o_flex_portal_end",
        },
        {
            trigger: ".o_flex_portal_undo",
            run: "click",
            expectUnloadPage: true,
        },
        ...previewAndConfirm(),
        {
            content: "back to the subscription",
            trigger: ".o_flex_portal_back",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "running again: cancel is offered again",
            trigger: ".o_flex_portal_subscription .o_flex_portal_cancel",
        },
    ],
});
