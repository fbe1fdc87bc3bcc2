"""The error a memcached server's item size limit raises (importable without pymemcache)."""

from __future__ import annotations

from resultstore import EncodeError, ResultTooLargeError

__all__ = ["ItemTooLargeError"]


class ItemTooLargeError(ResultTooLargeError):
    """memcached refused a result as larger than its largest item (its ``-I`` option).

    A :class:`~resultstore.ResultTooLargeError`, so callers catch both
    limits alike; ``limit`` is the server's ``item_size_max`` (0 if the server
    would not say) and ``server`` the one that refused.
    """

    def __init__(
        self,
        task_id: str,
        size: int,
        limit: int,
        server: str,
        *,
        batch: bool = False,
        what: str = "",
    ) -> None:
        self.task_id = task_id
        self.size = size
        self.limit = limit
        self.server = server
        known = f"{limit:,} bytes" if limit else "its item size"
        stored = " Nothing of the batch was stored." if batch else ""
        what = what or f"the result of task {task_id!r}"
        EncodeError.__init__(
            self,
            f"{what} is {size:,} bytes as a memcached item, but "
            f"memcached at {server} holds items of at most {known} (its -I option, 1m by "
            f"default).{stored} Start memcached with a larger -I (for example -I 4m, and "
            f"enough -m memory for such items), or keep results smaller: max_result_size "
            f"makes resultstore refuse them before they are sent",
        )
