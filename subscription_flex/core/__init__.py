"""Pure-Python money and calendar helpers: no ``odoo`` import here, so they can be
tested with hypothesis at full speed and reused by the SEPA and portal addons."""
