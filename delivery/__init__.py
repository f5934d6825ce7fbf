"""Notification delivery: rendering (``message``), channels (``channels``), routing
(``routing``), the exactly-once dispatcher (``dispatch``) and the local mail catcher
(``catcher``). See docs/notifications.md."""
