"""Real memcacheds for the plugin's tests, from the contract suite's fixtures."""

from resultstore_contract.servers import memcached_ring_server, memcached_server

__all__ = ["memcached_ring_server", "memcached_server"]
