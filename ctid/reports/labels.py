"""Report titles and column labels in English and Russian (the panel, CSV, XLSX and HTML use them)."""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    # reports
    "report:summary": ("Summary", "Сводка"),
    "report:load": ("Agent load", "Загрузка операторов"),
    "report:queue": ("Queue", "Очередь"),
    "report:by-group": ("By group", "По группам"),
    "report:by-hour": ("By hour of day", "По часам"),
    "report:by-weekday": ("By day of week", "По дням недели"),
    "report:answer-rate": ("Answer rate", "Коэффициент дозвона"),
    "report:service-level": ("Service level", "Уровень обслуживания"),
    "report:abandon": ("Abandoned calls", "Потерянные вызовы"),
    "report:agents": ("Agents (manager quality)", "Операторы (качество работы)"),
    "report:missed": ("Missed calls and callbacks", "Пропущенные и перезвоны"),
    "report:campaigns": ("Campaigns", "Рекламные кампании"),
    "report:cost": ("Call cost", "Стоимость звонков"),
    "report:funnel": ("Sales funnel", "Воронка продаж"),
    "report:followups": ("Missed callers not reached yet", "Не дозвонились до пропустивших"),
    # keys
    "key": ("Key", "Ключ"),
    "day": ("Day", "День"),
    "hour": ("Hour", "Час"),
    "weekday": ("Weekday", "День недели"),
    "group": ("Group", "Группа"),
    "agent": ("Agent", "Оператор"),
    "campaign": ("Campaign", "Кампания"),
    "channel": ("Channel", "Канал"),
    "utm_source": ("utm_source", "utm_source"),
    "utm_medium": ("utm_medium", "utm_medium"),
    "utm_campaign": ("utm_campaign", "utm_campaign"),
    "line": ("Line number", "Номер линии"),
    "direction": ("Direction", "Направление"),
    "cost_source": ("Cost source", "Источник стоимости"),
    "stage": ("Stage", "Этап"),
    "number": ("Number", "Номер"),
    "missed_at": ("Missed at", "Пропущен"),
    # figures
    "offered": ("Offered", "Поступило"),
    "answered": ("Answered", "Принято"),
    "missed": ("Missed", "Пропущено"),
    "abandoned": ("Abandoned", "Потеряно"),
    "short_abandons": ("Short abandons", "Короткие сбросы"),
    "answer_rate": ("Answer rate", "Доля принятых"),
    "abandon_rate": ("Abandon rate", "Доля потерянных"),
    "service_level": ("Service level", "Уровень обслуживания"),
    "answered_in_sl": ("Answered in SL", "Принято в срок"),
    "abandoned_in_sl": ("Abandoned in SL", "Потеряно в срок"),
    "asa": ("Avg. speed of answer", "Среднее время ответа"),
    "avg_abandon_wait": ("Avg. wait before abandon", "Среднее ожидание до сброса"),
    "wait_p50": ("Wait p50", "Ожидание p50"),
    "wait_p90": ("Wait p90", "Ожидание p90"),
    "wait_max": ("Longest wait", "Макс. ожидание"),
    "avg_talk": ("Avg. talk", "Средний разговор"),
    "avg_hold": ("Avg. hold", "Среднее удержание"),
    "talk": ("Talk time", "Время разговоров"),
    "short_calls": ("Short calls", "Короткие звонки"),
    "short_share": ("Short share", "Доля коротких"),
    "target": ("Target calls", "Целевые звонки"),
    "transfers": ("Transfers", "Переводы"),
    "outbound": ("Outbound", "Исходящие"),
    "outbound_connected": ("Outbound connected", "Исходящие с ответом"),
    "outbound_rate": ("Outbound answer rate", "Дозвон по исходящим"),
    "callbacks": ("Callbacks done", "Перезвонов"),
    "callback_avg": ("Avg. callback delay", "Среднее время перезвона"),
    "rating": ("Avg. rating", "Средняя оценка"),
    "ratings": ("Ratings", "Оценок"),
    "cost": ("Cost", "Стоимость"),
    "currency": ("Currency", "Валюта"),
    "calls": ("Calls", "Звонки"),
    "priced": ("Priced calls", "Тарифицировано"),
    "billed_minutes": ("Talk minutes", "Минуты разговора"),
    "avg_cost": ("Avg. cost per priced call", "Средняя стоимость"),
    "new_contacts": ("New contacts", "Новые контакты"),
    "spend": ("Spend", "Расходы"),
    "cost_per_call": ("Cost per call", "Цена звонка"),
    "cpl": ("Cost per lead", "Цена лида"),
    "leads": ("Leads", "Лиды"),
    "opportunities": ("Opportunities", "Сделки"),
    "won": ("Won", "Выиграно"),
    "revenue": ("Revenue", "Выручка"),
    "roi": ("ROI", "ROI"),
    "count": ("Count", "Количество"),
    "conversion": ("Conversion from previous", "Конверсия из предыдущего"),
    "available_h": ("Available", "Доступен"),
    "away_h": ("Away", "Отошёл"),
    "dnd_h": ("Do not disturb", "Не беспокоить"),
    "handle_h": ("On calls", "На звонках"),
    "occupancy": ("Occupancy", "Занятость"),
    "out_of_hours": ("Outside working hours", "Вне рабочего времени"),
    "called_back_in_sla": ("Called back in time", "Перезвонили вовремя"),
    "called_back_late": ("Called back late", "Перезвонили поздно"),
    "customer_called": ("Customer called again", "Клиент перезвонил сам"),
    "not_reached": ("Not reached", "Не дозвонились"),
    "reached_in_sla": ("Reached in time", "Связались вовремя"),
    "callback_median": ("Median callback delay", "Медиана перезвона"),
    "contacts": ("Contacts", "Контакты"),
    "target_callers": ("Target callers", "Целевые абоненты"),
    "none": ("(none)", "(нет)"),
    "total": ("Total", "Итого"),
}

WEEKDAYS = {"en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            "ru": ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"]}


def title(report: str, lang: str = "en") -> str:
    """The title of a report (or of one of its tables)."""
    return label(f"report:{report}", lang)


def label(key: str, lang: str = "en") -> str:
    pair = LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "ru" else pair[0]
