"""Throwaway real servers on free loopback ports, and the session fixtures that start them.

One module per server (``redis``, ``memcached``, ``rabbitmq``, ``mongodb``,
``osmem``, ``elasticsearch``...) beside the shared process helpers in ``_process``; a new backend
adds one module and lists it here. Each ``start_*`` function is a context
manager: it starts the server in a fresh folder, waits until it answers a
protocol-level hello, yields a :class:`Server` and stops every process it
started, by PID, however the block ends. A missing binary fails with the
package and the install command.
"""

from ._process import (
    LOOPBACK,
    Server,
    ServerError,
    ServerNotInstalledError,
    ServerProcess,
    ServerStartError,
    free_port,
    python_module_path,
)
from .cassandra import (
    CassandraCluster,
    CassandraNode,
    cassandra_auth_server,
    cassandra_cluster,
    cassandra_server,
    cql_query,
    start_cassandra,
    start_cassandra_cluster,
    start_cassandra_node,
)
from .elasticsearch import (
    elasticsearch_secure_server,
    elasticsearch_server,
    start_elasticsearch,
)
from .memcached import (
    memcached_ring_server,
    memcached_server,
    start_memcached,
    start_memcached_ring,
)
from .mongodb import (
    mongodb_auth_server,
    mongodb_command,
    mongodb_server,
    mongodb_standalone_server,
    start_mongodb,
)
from .opensearch import opensearch_server, start_opensearch
from .osmem import osmem_server, start_osmem
from .postgresql import (
    PostgresNode,
    postgresql_server,
    start_postgresql,
    start_postgresql_node,
)
from .rabbitmq import (
    AMQP_HEADER,
    RabbitMQNode,
    rabbitmq_server,
    start_rabbitmq,
    start_rabbitmq_node,
)
from .redis import (
    redis_auth_server,
    redis_cluster_server,
    redis_command,
    redis_sentinel_server,
    redis_server,
    redis_tls_server,
    start_redis,
    start_redis_cluster,
    start_redis_sentinel,
)
from .tls import TLSFiles, make_tls_files

__all__ = [
    "AMQP_HEADER",
    "LOOPBACK",
    "CassandraCluster",
    "CassandraNode",
    "PostgresNode",
    "RabbitMQNode",
    "Server",
    "ServerError",
    "ServerNotInstalledError",
    "ServerProcess",
    "ServerStartError",
    "TLSFiles",
    "cassandra_auth_server",
    "cassandra_cluster",
    "cassandra_server",
    "cql_query",
    "elasticsearch_secure_server",
    "elasticsearch_server",
    "free_port",
    "make_tls_files",
    "memcached_ring_server",
    "memcached_server",
    "mongodb_auth_server",
    "mongodb_command",
    "mongodb_server",
    "mongodb_standalone_server",
    "opensearch_server",
    "osmem_server",
    "postgresql_server",
    "python_module_path",
    "rabbitmq_server",
    "redis_auth_server",
    "redis_cluster_server",
    "redis_command",
    "redis_sentinel_server",
    "redis_server",
    "redis_tls_server",
    "start_cassandra",
    "start_cassandra_cluster",
    "start_cassandra_node",
    "start_elasticsearch",
    "start_memcached",
    "start_memcached_ring",
    "start_mongodb",
    "start_opensearch",
    "start_osmem",
    "start_postgresql",
    "start_postgresql_node",
    "start_rabbitmq",
    "start_rabbitmq_node",
    "start_redis",
    "start_redis_cluster",
    "start_redis_sentinel",
]
