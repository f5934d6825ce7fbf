"""Tests of the event store (``eventstore``): a real PostgreSQL, never mocks."""
