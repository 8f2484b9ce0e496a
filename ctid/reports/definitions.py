"""The definitions block every report carries: how each figure was computed, in English and Russian,
with the configured settings (`reports:`) filled in."""

from __future__ import annotations

from typing import Any

# How each abandon treatment counts the service level (docs/reports.md, kpi.md §4).
_SL = {
    "en": {"ignore": "answered within T / (offered − abandoned)",
           "negative": "answered within T / offered",
           "positive": "(answered within T + abandoned within T) / offered"},
    "ru": {"ignore": "принято за T / (поступило − потеряно)",
           "negative": "принято за T / поступило",
           "positive": "(принято за T + потеряно за T) / поступило"},
}

HEADINGS = {"en": ("Definitions", "Note"), "ru": ("Определения", "Примечание")}

# Notes a report may carry (why some figures are empty).
NOTES = {
    "en": {"no_crm": "no CRM with sales facts is configured: CRM figures are empty",
           "crm_failed": "the CRM did not answer ({error}): CRM figures are empty"},
    "ru": {"no_crm": "не настроена CRM с данными о продажах: показатели CRM пусты",
           "crm_failed": "CRM не ответила ({error}): показатели CRM пусты"},
}


def _en(s: Any) -> dict[str, str]:
    return {
        "period": f"Calls belong to the local date and hour their first event reached ctid (started_at) in "
                  f"{s.timezone}; a call crossing midnight counts on the day it started. Only ended calls count.",
        "offered": f"Offered = inbound calls − short abandons (unanswered within {s.short_abandon_seconds:g} s).",
        "answered": "Answered = inbound calls an agent answered"
                    + (f" and talked on for at least {s.answered_min_talk_seconds:g} s"
                       if s.answered_min_talk_seconds else "")
                    + "; a transferred call counts once, for the agent who answered first.",
        "missed": "Missed / abandoned = offered calls not answered (short abandons left out). A callback is a "
                  "call of its own and never makes the missed call answered.",
        "answer_rate": "Answer rate = answered / offered.",
        "abandon_rate": "Abandon rate = abandoned / offered.",
        "service_level": f"Service level ({s.abandon_treatment}) = {_SL['en'][s.abandon_treatment]}, "
                         f"T = {s.service_level_seconds:g} s of wait (queue + ring).",
        "asa": "Avg. speed of answer = Σ wait of answered calls / answered; wait runs from the first event "
               "(queue and ring time included) to the first answer.",
        "percentiles": "Wait percentiles: nearest rank over whole seconds of wait of answered calls.",
        "avg_talk": "Avg. talk = Σ talk / answered; talk excludes hold and covers every agent of a transferred call.",
        "short_calls": f"Short calls = answered calls with talk < {s.short_call_seconds:g} s.",
        "target": f"Target calls = answered calls with talk ≥ {s.target_talk_seconds:g} s.",
        "transfers": "Transfers = hand-overs from one agent to another within a call.",
        "outbound": "Outbound answer rate = outbound calls answered by the callee / outbound calls.",
        "agent": "Per agent: answered calls are the first answering agent's; missed calls are the agent's "
                 "the call rang alone (a group call nobody answered has no agent); outbound calls are the dialer's.",
        "callbacks": f"Follow-up of a missed call: the first answered call with the same number after it. "
                     f"'Called back in time' = we called and reached the caller within {s.callback_sla_minutes:g} "
                     f"min of the missed call's end; 'customer called again' = the caller's next answered call "
                     f"was inbound (whoever answered it). Callbacks done count for the agent who made them, "
                     f"whoever the missed call rang. Working hours: {s.working_hours}, days "
                     f"{','.join(map(str, s.working_days))}.",
        "rating": "Avg. rating = mean of the ratings the PBX stated (facts.rating), over rated calls only.",
        "cost": f"Cost = the PBX's stated cost (facts.cost) when it gives one, else priced from reports.tariffs "
                f"(billed seconds = 0 below free_below_s, else max(first_block_s, ceil(talk / increment_s) × "
                f"increment_s); cost = billed / 60 × per_minute + connect_fee) in {s.currency}.",
        "presence": "Time per status from the presence history, clipped to the period; occupancy = time on "
                    "calls (talk + hold of answered inbound calls, talk of outbound calls) / time available.",
        "campaign": "Campaign = the PBX's facts.campaign (or utm_campaign), else the campaign whose number pool "
                    "holds the dialled line; calls with neither are '(none)'. New contacts: the PBX's first_call "
                    "fact, else no earlier stored call from that number. Spend from reports.campaigns; "
                    "money = call cost + spend; cost per call = money / offered; cost per lead = money / leads; "
                    "ROI = (revenue − money) / money.",
        "funnel": "Funnel: inbound calls → answered → target calls → distinct target callers → CRM records of "
                  "those callers (CRMAdapter.sales_facts) created from the period's start to 30 days after its "
                  "end: contacts, leads, opportunities, won (revenue = Σ amount of won).",
    }


def _ru(s: Any) -> dict[str, str]:
    return {
        "period": f"Звонок относится к местной дате и часу, когда его первое событие пришло в ctid (started_at), "
                  f"по часовому поясу {s.timezone}; звонок через полночь считается в день начала. "
                  f"Учитываются только завершённые звонки.",
        "offered": f"Поступило = входящие звонки − короткие сбросы (без ответа в пределах "
                   f"{s.short_abandon_seconds:g} с).",
        "answered": "Принято = входящие звонки, на которые ответил оператор"
                    + (f" и проговорил не меньше {s.answered_min_talk_seconds:g} с"
                       if s.answered_min_talk_seconds else "")
                    + "; переведённый звонок считается один раз, за оператором, ответившим первым.",
        "missed": "Пропущено / потеряно = поступившие звонки без ответа (короткие сбросы не учитываются). "
                  "Перезвон — отдельный звонок, пропущенный звонок принятым не становится.",
        "answer_rate": "Доля принятых = принято / поступило.",
        "abandon_rate": "Доля потерянных = потеряно / поступило.",
        "service_level": f"Уровень обслуживания ({s.abandon_treatment}) = {_SL['ru'][s.abandon_treatment]}, "
                         f"T = {s.service_level_seconds:g} с ожидания (очередь + вызов).",
        "asa": "Среднее время ответа = Σ ожидания принятых звонков / принято; ожидание идёт от первого события "
               "(очередь и вызов включены) до первого ответа.",
        "percentiles": "Перцентили ожидания: метод ближайшего ранга по целым секундам ожидания принятых звонков.",
        "avg_talk": "Средний разговор = Σ разговора / принято; разговор без удержания, по всем операторам "
                    "переведённого звонка.",
        "short_calls": f"Короткие звонки = принятые звонки с разговором < {s.short_call_seconds:g} с.",
        "target": f"Целевые звонки = принятые звонки с разговором ≥ {s.target_talk_seconds:g} с.",
        "transfers": "Переводы = передачи звонка от одного оператора другому в пределах звонка.",
        "outbound": "Дозвон по исходящим = исходящие звонки, на которые ответил абонент / исходящие звонки.",
        "agent": "По операторам: принятые звонки — того, кто ответил первым; пропущенные — того оператора, "
                 "которому звонок поступал одному (у группового звонка без ответа оператора нет); "
                 "исходящие — того, кто звонил.",
        "callbacks": f"Обработка пропущенного звонка: первый принятый звонок с тем же номером после него. "
                     f"«Перезвонили вовремя» — мы позвонили и дозвонились в пределах {s.callback_sla_minutes:g} "
                     f"мин после окончания пропущенного звонка; «клиент перезвонил сам» — следующий принятый "
                     f"звонок абонента был входящим (кто бы на него ни ответил). Перезвон засчитывается "
                     f"оператору, который перезвонил, кому бы ни поступал пропущенный звонок. Рабочее время: "
                     f"{s.working_hours}, дни {','.join(map(str, s.working_days))}.",
        "rating": "Средняя оценка = среднее оценок, переданных АТС (facts.rating), только по оценённым звонкам.",
        "cost": f"Стоимость = стоимость от АТС (facts.cost), если АТС её передаёт, иначе по тарифам "
                f"reports.tariffs (тарифицируемые секунды = 0 при разговоре короче free_below_s, иначе "
                f"max(first_block_s, ceil(разговор / increment_s) × increment_s); стоимость = тарифицируемые "
                f"/ 60 × per_minute + connect_fee), в {s.currency}.",
        "presence": "Время в каждом статусе по истории присутствия, в пределах периода; занятость = время на "
                    "звонках (разговор + удержание принятых входящих, разговор исходящих) / время в статусе "
                    "«Доступен».",
        "campaign": "Кампания = facts.campaign от АТС (или utm_campaign), иначе кампания, в пул номеров которой "
                    "входит набранная линия; звонки без того и другого — «(нет)». Новые контакты: факт first_call "
                    "от АТС, иначе — нет более раннего сохранённого звонка с этого номера. Расходы из "
                    "reports.campaigns; затраты = стоимость звонков + расходы; цена звонка = затраты / поступило; "
                    "цена лида = затраты / лиды; ROI = (выручка − затраты) / затраты.",
        "funnel": "Воронка: входящие звонки → принятые → целевые звонки → различные целевые абоненты → записи "
                  "CRM этих абонентов (CRMAdapter.sales_facts), созданные с начала периода до 30 дней после его "
                  "конца: контакты, лиды, сделки, выиграно (выручка = Σ сумм выигранных).",
    }


TEXTS = {"en": _en, "ru": _ru}


def note(key: str, lang: str, **values: str) -> str:
    return NOTES[lang][key].format(**values)


def all_definitions(settings: Any, lang: str) -> dict[str, str]:
    """Every definition in one language (the tests check both languages hold the same terms)."""
    return TEXTS[lang](settings)


def definitions(settings: Any, lang: str, *terms: str) -> list[tuple[str, str]]:
    """The definitions block of a report: the period rule, then the formula of each figure used."""
    text = all_definitions(settings, lang)
    return [(term, text[term]) for term in ("period", *terms)]
