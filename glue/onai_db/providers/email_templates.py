"""The account e-mails the seed lists (Tripwire welcome, e-mail changed, password changed).

Gmail-friendly, table-based HTML plus a plain-text part. The welcome e-mail carries a
one-time set-password link (made by Supabase Auth at send time) instead of a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .base import PermanentError

TEMPLATES = ("tripwire_welcome", "email_changed", "password_changed")


@dataclass(frozen=True)
class Email:
    subject: str
    html: str
    text: str


def _layout(title: str, paragraphs: list[str], button: tuple[str, str] | None = None) -> str:
    """The e-mail's HTML: ``title`` and the button's label and link are plain text (escaped
    here), ``paragraphs`` are HTML whose values the caller has escaped."""
    rows = "".join(
        f'<tr><td style="padding:8px 24px;font:15px/1.5 Arial,sans-serif;color:#222">{p}</td></tr>'
        for p in paragraphs
    )
    if button:
        label, href = button
        rows += (
            '<tr><td style="padding:16px 24px"><a href="'
            + escape(href, quote=True)
            + '" style="background:#00b67a;color:#fff;padding:12px 20px;border-radius:6px;'
            'text-decoration:none;font:bold 15px Arial,sans-serif">' + escape(label) + "</a></td></tr>"
        )
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f4">'
        '<tr><td align="center"><table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        'style="background:#fff;margin:24px 0">'
        f'<tr><td style="padding:24px;font:bold 20px Arial,sans-serif">{escape(title)}</td></tr>'
        f"{rows}</table></td></tr></table>"
    )


def render(template: str, payload: dict, *, platform_url: str, set_password_link: str | None = None) -> Email:
    """Build the e-mail for ``template``; PermanentError for an unknown template."""
    # plain text: it goes into the title, which _layout escapes (escaped here as well, the reader
    # saw "O&#x27;Brien"; found by mutation testing)
    name = str(payload.get("name") or "студент")
    to = escape(str(payload.get("to") or ""))
    if template == "tripwire_welcome":
        if not set_password_link:
            raise PermanentError("tripwire_welcome needs a set-password link")
        return Email(
            subject="Добро пожаловать в onAI Academy — Интегратор 3.0",
            html=_layout(
                f"Здравствуйте, {name}!",
                [
                    "Ваш доступ к экспресс-курсу «Интегратор 3.0» открыт.",
                    f"Логин: <b>{to}</b>",
                    "Нажмите кнопку, чтобы задать пароль (ссылка одноразовая и скоро истечёт).",
                    f'Платформа: <a href="{escape(platform_url, quote=True)}">{escape(platform_url)}</a>',
                ],
                ("Задать пароль", set_password_link),
            ),
            text=(
                f"Здравствуйте, {payload.get('name') or 'студент'}!\n"
                "Ваш доступ к экспресс-курсу «Интегратор 3.0» открыт.\n"
                f"Логин: {payload.get('to')}\n"
                f"Задайте пароль по одноразовой ссылке: {set_password_link}\n"
                f"Платформа: {platform_url}\n"
            ),
        )
    if template == "email_changed":
        new = escape(str(payload.get("new_email") or ""))
        return Email(
            subject="Адрес e-mail вашего аккаунта изменён",
            html=_layout(
                f"Здравствуйте, {name}!",
                [
                    f"Адрес входа изменён: <b>{to}</b> → <b>{new}</b>.",
                    "Если это были не вы, ответьте на это письмо.",
                ],
            ),
            text=(
                f"Адрес входа изменён: {payload.get('to')} -> {payload.get('new_email')}.\n"
                "Если это были не вы, ответьте на это письмо.\n"
            ),
        )
    if template == "password_changed":
        return Email(
            subject="Пароль вашего аккаунта изменён",
            html=_layout(
                f"Здравствуйте, {name}!",
                [
                    "Пароль вашего аккаунта только что изменён.",
                    "Если это были не вы, ответьте на это письмо.",
                ],
            ),
            text="Пароль вашего аккаунта только что изменён.\nЕсли это были не вы, ответьте на это письмо.\n",
        )
    raise PermanentError(f"unknown e-mail template {template!r}")
