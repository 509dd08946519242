"""The Afosto GraphQL client (implements handlers.ports.AfostoApi)."""

from consumer.afosto.client import PROBE_ORDER_ID, AfostoClient
from consumer.afosto.limiter import SharedLimiter

__all__ = ["PROBE_ORDER_ID", "AfostoClient", "SharedLimiter"]
