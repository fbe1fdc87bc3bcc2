"""A real PostgreSQL for the plugin's tests, from the contract suite's fixtures."""

from resultstore_contract.servers import postgresql_server

__all__ = ["postgresql_server"]
