"""resultstore-amqp: results as messages to the asking client's reply queue (RabbitMQ).

Importing this package imports no client library; the backend module imports
kombu when an ``amqp://``, ``amqps://`` or ``rpc://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-amqp")

__all__ = ["__version__"]
