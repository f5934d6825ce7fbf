"""The web service: HTTP API (``/api/v1``) and server-rendered pages for participants,
coordinators and auditors. Build it with :func:`web.app.create_app`."""
