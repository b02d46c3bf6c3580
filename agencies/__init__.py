"""Agencies: the adapter protocol, the registry of adapters, and the built-in simulations."""

from interdict.agencies.base import Adapter, AdapterContext
from interdict.agencies.inbound import Flag
from interdict.agencies.registry import adapter_class, available, create
from interdict.agencies.simulated import Decision, SimulatedAgency

__all__ = ["Adapter", "AdapterContext", "Decision", "Flag", "SimulatedAgency", "adapter_class",
           "available", "create"]
