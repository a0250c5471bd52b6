"""The toolkit exchange plugins assemble their clients from (rate limiting today). Internal: plugins import
from `moonship_core`."""
