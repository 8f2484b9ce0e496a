"""Texts of the launcher in Russian and English; the language follows the OS locale unless set."""

from __future__ import annotations

import locale
import os

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "available": "Available", "away": "Away", "dnd": "Do not disturb", "busy": "On a call",
        "offline": "Offline", "disconnected": "Not connected",
        "locked": "workstation locked", "lease": "launcher was unreachable", "on_call": "on a call",
        "by_user": "set by you", "by_launcher": "set by the launcher", "by_lease": "launcher was unreachable",
        "signed_out": "signed out", "open_panel": "Open panel", "sign_out": "Sign out", "quit": "Quit",
        "status_menu": "Status", "incoming": "Incoming call", "unknown_caller": "Unknown number",
        "new_contact": "new contact", "refused_by_user": "Your status {status} was set by hand; kept.",
        "signed_in_as": "Signed in to {server} as {user}.", "signed_out_ok": "Signed out; the token is removed.",
        "not_signed_in": "Not signed in: run `ctid-launcher login --server URL --user NAME` first.",
        "already_running": "ctid-launcher is already running for this user.",
        "panel_opened": "The panel is opened in the browser.",
        "panel_not_opened": "Could not open the panel: {reason}",
        "autostart_on": "Autostart is on ({where}).", "autostart_off": "Autostart is off.",
        "autostart_disabled_by_user": "Autostart is registered but disabled in the system settings ({where}).",
        "bad_login": "Sign-in failed: {reason}", "cannot_reach": "Cannot reach {server}: {reason}",
    },
    "ru": {
        "available": "Доступен", "away": "Отошёл", "dnd": "Не беспокоить", "busy": "Разговор",
        "offline": "Не в сети", "disconnected": "Нет связи с сервером",
        "locked": "компьютер заблокирован", "lease": "лаунчер был недоступен", "on_call": "идёт разговор",
        "by_user": "задано вами", "by_launcher": "задано лаунчером", "by_lease": "лаунчер был недоступен",
        "signed_out": "вход не выполнен", "open_panel": "Открыть панель", "sign_out": "Выйти",
        "quit": "Закрыть", "status_menu": "Статус", "incoming": "Входящий звонок",
        "unknown_caller": "Неизвестный номер", "new_contact": "новый контакт",
        "refused_by_user": "Статус «{status}» задан вручную; оставлен как есть.",
        "signed_in_as": "Вход выполнен: {server}, пользователь {user}.",
        "signed_out_ok": "Выход выполнен; токен удалён.",
        "not_signed_in": "Вход не выполнен: сначала `ctid-launcher login --server URL --user ИМЯ`.",
        "already_running": "ctid-launcher уже запущен для этого пользователя.",
        "panel_opened": "Панель открыта в браузере.",
        "panel_not_opened": "Не удалось открыть панель: {reason}",
        "autostart_on": "Автозапуск включён ({where}).", "autostart_off": "Автозапуск выключен.",
        "autostart_disabled_by_user": "Автозапуск зарегистрирован, но отключён в настройках системы ({where}).",
        "bad_login": "Не удалось войти: {reason}", "cannot_reach": "Нет связи с {server}: {reason}",
    },
}

_language: str | None = None


def detect() -> str:
    """``ru`` when the OS locale is Russian, else ``en`` (``CTID_LAUNCHER_LANG`` overrides)."""
    forced = os.environ.get("CTID_LAUNCHER_LANG")
    if forced in TEXTS:
        return forced
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "ru" if value.lower().startswith("ru") else "en"
    try:
        code = locale.getlocale()[0] or ""
    except ValueError:
        code = ""
    return "ru" if code.lower().startswith(("ru", "russian")) else "en"


def set_language(language: str | None) -> None:
    global _language
    _language = language if language in TEXTS else None


def t(key: str, **values: str) -> str:
    text = TEXTS[_language or detect()].get(key) or TEXTS["en"][key]
    return text.format(**values) if values else text
