"""Every name this plugin takes from ``cassandra-driver``, imported in one place.

The driver ships no type information (no ``py.typed``, no stubs on PyPI),
so its modules are imported here once, each ignore saying so, and the rest
of the plugin imports from this module.
"""

from __future__ import annotations

# cassandra-driver has no py.typed marker and no stubs: its names are Any to mypy.
from cassandra import (  # type: ignore[import-untyped]  # untyped driver, see above
    AuthenticationFailed,
    ConsistencyLevel,
    CoordinationFailure,
    InvalidRequest,
    OperationTimedOut,
    ReadTimeout,
    Unauthorized,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider  # type: ignore[import-untyped]  # untyped driver
from cassandra.cluster import (  # type: ignore[import-untyped]  # untyped driver
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.concurrent import (  # type: ignore[import-untyped]  # untyped driver
    execute_concurrent_with_args,
)
from cassandra.connection import (  # type: ignore[import-untyped]  # untyped driver
    ConnectionException,
    DefaultEndPoint,
)
from cassandra.policies import (  # type: ignore[import-untyped]  # untyped driver
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import (  # type: ignore[import-untyped]  # untyped driver
    ErrorMessage,
    IsBootstrappingErrorMessage,
    OverloadedErrorMessage,
    ServerError,
    TruncateError,
)
from cassandra.query import (  # type: ignore[import-untyped]  # untyped driver
    UNSET_VALUE,
    PreparedStatement,
    dict_factory,
    tuple_factory,
)

__all__ = [
    "EXEC_PROFILE_DEFAULT",
    "UNSET_VALUE",
    "AuthenticationFailed",
    "Cluster",
    "ConnectionException",
    "ConsistencyLevel",
    "CoordinationFailure",
    "DCAwareRoundRobinPolicy",
    "DefaultEndPoint",
    "ErrorMessage",
    "ExecutionProfile",
    "ExponentialReconnectionPolicy",
    "InvalidRequest",
    "IsBootstrappingErrorMessage",
    "NoHostAvailable",
    "OperationTimedOut",
    "OverloadedErrorMessage",
    "PlainTextAuthProvider",
    "PreparedStatement",
    "ReadTimeout",
    "RetryPolicy",
    "ServerError",
    "Session",
    "TokenAwarePolicy",
    "TruncateError",
    "Unauthorized",
    "Unavailable",
    "WriteTimeout",
    "dict_factory",
    "execute_concurrent_with_args",
    "tuple_factory",
]
