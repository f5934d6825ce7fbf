"""Repositories over Postgres tables that are not the event log (the roster and contacts).

Used by activities, entry points and the simulation; they import the domain and asyncpg only.
"""
