"""Observability primitives every layer may import (it imports nothing of Sebaya)."""
