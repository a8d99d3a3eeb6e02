"""The portal's routes: `pages` (HTML, under /portal) and `portal_sessions` (the JSON route issuing links).

Each page module adds its routes to `pages` when imported; this module imports them all.
"""

from service.api.portal import endpoint_pages, operator_pages, order_pages
from service.api.portal.access import link_ttl, portal_sessions, portal_url
from service.api.portal.common import HERE, PortalError, PortalState, page, pages

__all__ = [
    "HERE",
    "PortalError",
    "PortalState",
    "endpoint_pages",
    "link_ttl",
    "operator_pages",
    "order_pages",
    "page",
    "pages",
    "portal_sessions",
    "portal_url",
]
