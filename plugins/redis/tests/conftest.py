"""Real redis-servers for the plugin's tests, from the contract suite's fixtures."""

from resultstore_contract.servers import (
    redis_auth_server,
    redis_cluster_server,
    redis_server,
    redis_tls_server,
)

__all__ = ["redis_auth_server", "redis_cluster_server", "redis_server", "redis_tls_server"]
