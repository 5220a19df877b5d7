from . import test_portal_security
from . import test_portal_pages
from . import test_portal_changes
from . import test_portal_i18n
from . import test_portal_sepa
from . import test_portal_tours
from . import test_portal_upsell
