"""Directives: routing accepted entries to agencies, the outbox, and delivery with receipts."""

from interdict.directives.delivery import Delivered, deliver_agency
from interdict.directives.document import directive_id
from interdict.directives.outbox import Issued, agency_routes, expire, plan
from interdict.directives.routing import AgencyRoute, minimise, route

__all__ = ["AgencyRoute", "Delivered", "Issued", "agency_routes", "deliver_agency", "directive_id",
           "expire", "minimise", "plan", "route"]
