"""Paths of the repository that tests read."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "rules.yaml.example"
