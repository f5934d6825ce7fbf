"""Application plumbing for Sebaya: settings, logging, the embedded dev stack and the CLI.

The product lives in the top-level packages: ``domain`` (pure rules), ``workflows``
(Temporal processes), ``activities`` (side effects), ``eventstore`` (the domain log in
Postgres) and ``intake`` (program files and HR exports).
"""
