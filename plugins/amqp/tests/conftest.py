"""Fixtures of resultstore-amqp's tests: the broker URL for this session's RabbitMQ."""

from __future__ import annotations

import pytest
from resultstore_contract.servers import Server


@pytest.fixture
def amqp_url(rabbitmq_server: Server) -> str:
    return rabbitmq_server.url
