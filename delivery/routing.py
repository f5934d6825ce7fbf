"""Which channel serves whom.

Three levels, most specific first: the person's own preference (people.csv ``notify_via``,
unless the program switches preferences off), the program's ``notifications.channel``, the
deployment's ``SEBAYA_NOTIFY_CHANNEL`` (``auto``: e-mail when an SMTP server is configured,
else chat when a webhook is, else the log). A wish that cannot be served falls back: chat
without a webhook goes by e-mail, e-mail without an address goes to chat, and the log always
works.
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.channels import Contact, LogChannel, NotificationChannel, SmtpChannel, WebhookChannel
from domain.program import NotificationPolicy, NotifyVia
from sebaya.settings import Settings


@dataclass
class Router:
    email: NotificationChannel | None = None
    chat: NotificationChannel | None = None
    log: NotificationChannel | None = None
    default: NotifyVia | None = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = LogChannel()

    @classmethod
    def only(cls, channel: NotificationChannel) -> Router:
        """Everything through one channel (tests, benchmarks, a single-channel deployment)."""
        return cls(email=channel, chat=channel, log=channel)

    @classmethod
    def from_settings(cls, settings: Settings, *, smtp_fallback: tuple[str, int] | None = None
                      ) -> Router:
        """Channels from ``SEBAYA_SMTP_*`` / ``SEBAYA_WEBHOOK_*``. ``smtp_fallback`` (host,
        port) is used when no SMTP host is configured: the embedded stack's mail catcher."""
        email: NotificationChannel | None = None
        if settings.smtp_host:
            email = SmtpChannel(
                settings.smtp_host, settings.smtp_port, sender=settings.smtp_from,
                tls=settings.smtp_tls, username=settings.smtp_username,
                password=(settings.smtp_password.get_secret_value()
                          if settings.smtp_password else None),
                connections=settings.smtp_connections,
            )
        elif smtp_fallback is not None:
            email = SmtpChannel(smtp_fallback[0], smtp_fallback[1], sender=settings.smtp_from,
                                tls="none", connections=settings.smtp_connections)
        chat: NotificationChannel | None = None
        if settings.webhook_url:
            chat = WebhookChannel(
                settings.webhook_url, style=settings.webhook_style,
                secret=(settings.webhook_secret.get_secret_value()
                        if settings.webhook_secret else None),
            )
        default = None if settings.notify_channel == "auto" else NotifyVia(settings.notify_channel)
        return cls(email=email, chat=chat, default=default)

    def _deployment_default(self) -> NotifyVia:
        if self.default is not None:
            return self.default
        if self.email is not None:
            return NotifyVia.EMAIL
        return NotifyVia.CHAT if self.chat is not None else NotifyVia.LOG

    def route(self, contact: Contact, policy: NotificationPolicy | None = None
              ) -> NotificationChannel:
        policy = policy or NotificationPolicy()
        wanted: NotifyVia
        if contact.notify_via and policy.personal_preference:
            wanted = NotifyVia(contact.notify_via)
        else:
            wanted = policy.channel or self._deployment_default()
        assert self.log is not None
        if wanted is NotifyVia.LOG:
            return self.log
        can_email = self.email is not None and bool(contact.email)
        if wanted is NotifyVia.CHAT and self.chat is not None:
            return self.chat
        if can_email:
            assert self.email is not None
            return self.email
        return self.chat or self.log

    async def aclose(self) -> None:
        seen: set[int] = set()
        for channel in (self.email, self.chat, self.log):
            if channel is not None and id(channel) not in seen:
                seen.add(id(channel))
                await channel.aclose()
