"""Real SecantusDB servers for the plugin's tests, from the contract suite's fixtures."""

from resultstore_contract.servers import (
    mongodb_auth_server,
    mongodb_server,
    mongodb_standalone_server,
)

__all__ = ["mongodb_auth_server", "mongodb_server", "mongodb_standalone_server"]
