from collections.abc import Callable
from typing import Any

def apply_levels(
    side: Any, levels: Any, parse_price: Callable[[Any, Any], int], zeros: frozenset[Any], no_key: int
) -> None: ...
def top(side: Any, n: int, no_key: int) -> Any: ...
