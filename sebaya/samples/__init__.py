"""Sample event streams decided by the domain itself, for tests, benchmarks and demos."""
