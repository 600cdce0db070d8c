"""What the referral tells the patient, in English and Spanish.

Minimum necessary: a text names the clinic and a number to call, never the service, the
specialty, a test or a diagnosis (a phone's lock screen shows it to anyone). Every SMS ends with
how to opt out and fits one GSM-7 segment with the longest values allowed (SENDER_MAX and
PHONE_MAX characters): the Spanish texts leave out the accents GSM-7 does not have (á, í, ó, ú),
as Spanish texts commonly do, since one such letter makes the whole text UCS-2 (70 characters).
Email and portal messages say the same, with a subject.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from workflows.care.messaging import Medium
from workflows.care.outreach import Message

SCHEDULE = "referral.schedule"  # book the visit the order asks for
REMINDER = "referral.reminder"  # the visit is coming: confirm it, or ask to talk
SENDER_MAX = 30  # characters of OUTREACH_SENDER_NAME the SMS texts have room for
PHONE_MAX = 17  # and of OUTREACH_CALLBACK_PHONE, e.g. "+1 (555) 010-0100"
LANGUAGES = ("en", "es")

SMS = {
    (SCHEDULE, "en"): "{sender}: your care team asked us to help you book a visit. "
    "Please call us at {phone} to schedule it. Reply STOP to opt out.",
    (SCHEDULE, "es"): "{sender}: su equipo de salud pidio que programe una cita. "
    "Llamenos al {phone}. Responda STOP para no recibir mensajes.",
    (REMINDER, "en"): "{sender}: reminder of your visit on {day} at {time}. "
    "Reply 1 to confirm, 2 to talk to us. Reply STOP to opt out.",
    (REMINDER, "es"): "{sender}: le recordamos su cita el {day} a las {time}. "
    "Responda 1 para confirmar, 2 para hablar con nosotros. STOP para no recibir mas.",
}
SUBJECTS = {
    (SCHEDULE, "en"): "Please schedule your visit",
    (SCHEDULE, "es"): "Por favor, programe su cita",
    (REMINDER, "en"): "Reminder of your visit",
    (REMINDER, "es"): "Recordatorio de su cita",
}
LETTERS = {
    (SCHEDULE, "en"): "Hello,\n\nYour care team asked {sender} to help you book a visit. "
    "Please call us at {phone} to schedule it.\n\n{sender}",
    (SCHEDULE, "es"): "Hola:\n\nSu equipo de salud pidió a {sender} que le ayude a programar "
    "una cita. Llámenos al {phone} para programarla.\n\n{sender}",
    (REMINDER, "en"): "Hello,\n\nThis is a reminder of your visit on {day} at {time}. "
    "To confirm it or to change it, call us at {phone}.\n\n{sender}",
    (REMINDER, "es"): "Hola:\n\nLe recordamos su cita el {day} a las {time}. Para confirmarla "
    "o cambiarla, llámenos al {phone}.\n\n{sender}",
}
# Dates spelled out here, not by the process's locale: the same words on every worker.
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day(at: datetime, language: str) -> str:
    if language == "es":
        return f"{at.day:02d}/{at.month:02d}"
    return f"{WEEKDAYS[at.weekday()]} {MONTHS[at.month - 1]} {at.day}"


def _time(at: datetime, language: str) -> str:
    if language == "es":
        return f"{at.hour:02d}:{at.minute:02d}"
    return f"{(at.hour - 1) % 12 + 1}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"


def render(
    kind: str,
    language: str,
    channel: Medium,
    *,
    sender: str,
    phone: str,
    appointment_at: datetime | None = None,
    timezone: str = "America/New_York",
) -> Message:
    """The message of `kind` in the patient's language (English when there is no translation),
    the appointment's day and time read in the clinic's time zone."""
    language = language if (kind, language) in SMS else "en"
    values = {"sender": sender, "phone": phone, "day": "", "time": ""}
    if appointment_at is not None:
        local = appointment_at.astimezone(ZoneInfo(timezone))
        values["day"], values["time"] = _day(local, language), _time(local, language)
    if channel == Medium.SMS:
        return Message(body=SMS[(kind, language)].format(**values))
    return Message(
        subject=f"{SUBJECTS[(kind, language)]} ({sender})",
        body=LETTERS[(kind, language)].format(**values),
    )
