"""The offline gateway: Stripe's test tokens and behaviour, kept in the cache, with injectable faults."""

from gateways.simulator.gateway import SimulatorGateway

__all__ = ["SimulatorGateway"]
