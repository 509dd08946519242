"""Afosto sandbox: a GraphQL simulator of Afosto's invoicing API with seeded faults."""

from sandbox.faults import FaultConfig, FaultController
from sandbox.ledger import Ledger
from sandbox.runner import Sandbox, SandboxSettings, running
from sandbox.simulator import Simulator
from sandbox.store import LineSpec, Store

__all__ = [
    "FaultConfig",
    "FaultController",
    "Ledger",
    "LineSpec",
    "Sandbox",
    "SandboxSettings",
    "Simulator",
    "Store",
    "running",
]
