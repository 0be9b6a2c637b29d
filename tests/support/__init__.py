"""Helpers the tests import (fixtures live in conftest.py files; no test module imports another)."""
