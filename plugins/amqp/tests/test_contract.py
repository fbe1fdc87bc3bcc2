"""resultstore-amqp runs the published contract suite on a real RabbitMQ."""

from __future__ import annotations

import pytest
from resultstore_contract import BackendContract, DeadServer
from resultstore_contract.servers import LOOPBACK, Server, free_port


class TestAmqpContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, rabbitmq_server: Server) -> str:
        return rabbitmq_server.url

    @pytest.fixture
    def dead_server(self) -> DeadServer:
        # A free port nobody listens on: every connect is refused at once.
        return DeadServer(
            url=f"amqp://guest:guest@{LOOPBACK}:{free_port()}//",
            options={"connect_timeout": 1, "retry_total": 1},
            within=5.0,
        )
