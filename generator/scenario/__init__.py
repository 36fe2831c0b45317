"""Scenario files: the typed model and the YAML loader with file:line errors."""

from generator.scenario.load import load_scenario
from generator.scenario.model import Scenario

__all__ = ["Scenario", "load_scenario"]
