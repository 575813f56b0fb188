"""Verdicts and reason codes: a closed set, each with a sentence a steward can say aloud.

The codes are stable: they appear in the journal, in ``--json`` output, in logs and in
metrics, and ``docs/credential.md`` lists them. Sentences are templates filled from the
decision's details (entrances, gate, times in the venue's time zone).
"""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    ADMIT = "admit"
    REFUSE = "refuse"
    STEWARD = "steward"
    """A human must settle it: the gate stays closed and calls the steward."""


class Lang(enum.StrEnum):
    FR = "fr"
    EN = "en"


class Reason(enum.StrEnum):
    """Why the gate decided what it did. The value is the stable code."""

    VALID = "VALID"
    VALID_PAPER = "VALID_PAPER"
    REENTRY = "REENTRY"
    EXIT = "EXIT"
    NOT_A_TICKET = "NOT_A_TICKET"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    MALFORMED = "MALFORMED"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    KEY_WITHDRAWN = "KEY_WITHDRAWN"
    KEY_NOT_TRUSTED = "KEY_NOT_TRUSTED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_EVENT = "WRONG_EVENT"
    WRONG_ENTRANCE = "WRONG_ENTRANCE"
    CANCELLED = "CANCELLED"
    SUPERSEDED = "SUPERSEDED"
    NOT_YET_VALID = "NOT_YET_VALID"
    EXPIRED = "EXPIRED"
    PAPER_TICKET = "PAPER_TICKET"
    CLOCK_UNTRUSTED = "CLOCK_UNTRUSTED"
    STALE_CODE = "STALE_CODE"
    PHONE_CLOCK_AHEAD = "PHONE_CLOCK_AHEAD"
    BAD_DEVICE_SIGNATURE = "BAD_DEVICE_SIGNATURE"
    ALREADY_ADMITTED = "ALREADY_ADMITTED"
    NOT_INSIDE = "NOT_INSIDE"
    MANUAL_ADMIT = "MANUAL_ADMIT"
    MANUAL_DENY = "MANUAL_DENY"
    JOURNAL_UNAVAILABLE = "JOURNAL_UNAVAILABLE"
    """The decision admitted, but the journal could not record it: nobody goes in."""
    FEED_UNAVAILABLE = "FEED_UNAVAILABLE"
    """The revocation list could not be read (a damaged store): a steward decides."""
    SESSION_NOT_OPEN = "SESSION_NOT_OPEN"
    """The ticket's session is served here, but its gates are not open yet."""
    SESSION_CLOSED = "SESSION_CLOSED"
    """The ticket's session is served here, but its gates have closed."""
    SESSION_ELSEWHERE = "SESSION_ELSEWHERE"
    """The ticket's session is not served here; the config says which gate area serves it."""
    CATEGORY_ENTRANCE = "CATEGORY_ENTRANCE"
    """The session's rules send this ticket category to other entrances."""
    OUTSIDE_ENTRY_WINDOW = "OUTSIDE_ENTRY_WINDOW"
    """The session's rules admit this category only at other times of day."""
    MAX_ENTRIES_REACHED = "MAX_ENTRIES_REACHED"
    DAILY_LIMIT_REACHED = "DAILY_LIMIT_REACHED"
    TOO_SOON = "TOO_SOON"
    """Less than the rules' minimum time since the ticket's last entry."""
    RULE_NOT_MET = "RULE_NOT_MET"
    """A condition of the session's rules does not hold for this ticket now."""
    RULE_UNEVALUABLE = "RULE_UNEVALUABLE"
    """A rule could not be evaluated (unknown variable, bad value, no history): refused."""
    ACCESSIBLE_LANE = "ACCESSIBLE_LANE"
    """An accessible-lane ticket at a standard lane that calls the steward for it."""


# (English, French) per reason. Placeholders: {entrances} {gate} {time} {from} {until}
# {when} (the time the reason names, in the venue's zone) {info} (an area, a count, the
# entrances a rule names).
SENTENCES: dict[Reason, tuple[str, str]] = {
    Reason.VALID: ("Welcome, please go through.", "Bienvenue, vous pouvez passer."),
    Reason.VALID_PAPER: (
        "Printed ticket accepted, please go through.",
        "Billet imprimé accepté, vous pouvez passer.",
    ),
    Reason.REENTRY: ("Welcome back, please go through.", "Bon retour, vous pouvez passer."),
    Reason.EXIT: ("Exit recorded, see you soon.", "Sortie enregistrée, à tout à l'heure."),
    Reason.NOT_A_TICKET: (
        "This is not a ticket code. Please open your ticket in the official app.",
        "Ce n'est pas un code de billet. Ouvrez votre billet dans l'application officielle.",
    ),
    Reason.UNSUPPORTED_VERSION: (
        "This ticket format is not supported here. Please update the app or see a steward.",
        "Ce format de billet n'est pas pris en charge ici. Mettez l'application à jour "
        "ou adressez-vous à un steward.",
    ),
    Reason.MALFORMED: (
        "The code could not be read correctly. Please try again or see a steward.",
        "Le code n'a pas pu être lu correctement. Réessayez ou adressez-vous à un steward.",
    ),
    Reason.UNKNOWN_KEY: (
        "This ticket was not issued by a known issuer. Please see a steward.",
        "Ce billet ne provient pas d'un émetteur connu. Adressez-vous à un steward.",
    ),
    Reason.KEY_WITHDRAWN: (
        "This ticket was signed with a withdrawn key. Please see a steward.",
        "Ce billet a été signé avec une clé retirée. Adressez-vous à un steward.",
    ),
    Reason.KEY_NOT_TRUSTED: (
        "This ticket's issuer is not valid for this event or at this time. Please see a steward.",
        "L'émetteur de ce billet n'est pas valable pour cet événement ou à cette heure. "
        "Adressez-vous à un steward.",
    ),
    Reason.BAD_SIGNATURE: (
        "This ticket is not genuine: its signature does not match.",
        "Ce billet n'est pas authentique : sa signature ne correspond pas.",
    ),
    Reason.WRONG_EVENT: (
        "This ticket is for another event.",
        "Ce billet est pour un autre événement.",
    ),
    Reason.WRONG_ENTRANCE: (
        "This ticket is for entrance {entrances}. Please go there.",
        "Ce billet est pour l'entrée {entrances}. Merci de vous y rendre.",
    ),
    Reason.CANCELLED: (
        "This ticket has been cancelled.",
        "Ce billet a été annulé.",
    ),
    Reason.SUPERSEDED: (
        "This ticket was transferred or resold: this copy is no longer valid.",
        "Ce billet a été transféré ou revendu : cet exemplaire n'est plus valable.",
    ),
    Reason.NOT_YET_VALID: (
        "This ticket is valid only from {from}.",
        "Ce billet n'est valable qu'à partir de {from}.",
    ),
    Reason.EXPIRED: (
        "This ticket expired at {until}.",
        "Ce billet a expiré à {until}.",
    ),
    Reason.PAPER_TICKET: (
        "Printed ticket: a steward will check it.",
        "Billet imprimé : un steward va le vérifier.",
    ),
    Reason.CLOCK_UNTRUSTED: (
        "The gate's clock is not synchronised: a steward will check your ticket.",
        "L'horloge du portique n'est pas synchronisée : un steward va vérifier votre billet.",
    ),
    Reason.STALE_CODE: (
        "This code is out of date, probably a screenshot. Please show the live ticket "
        "in the app.",
        "Ce code est périmé, sans doute une capture d'écran. Montrez le billet en direct "
        "dans l'application.",
    ),
    Reason.PHONE_CLOCK_AHEAD: (
        "Your phone's clock is ahead. Please set it to automatic time and try again.",
        "L'horloge de votre téléphone est en avance. Réglez-la sur l'heure automatique "
        "et réessayez.",
    ),
    Reason.BAD_DEVICE_SIGNATURE: (
        "This code was not made by the ticket holder's phone. Please see a steward.",
        "Ce code ne vient pas du téléphone du titulaire. Adressez-vous à un steward.",
    ),
    Reason.ALREADY_ADMITTED: (
        "This ticket was already admitted at gate {gate} at {time}.",
        "Ce billet a déjà été admis au portique {gate} à {time}.",
    ),
    Reason.NOT_INSIDE: (
        "This ticket is not recorded as inside: no exit to record.",
        "Ce billet n'est pas enregistré à l'intérieur : aucune sortie à enregistrer.",
    ),
    Reason.MANUAL_ADMIT: (
        "Admitted by a steward.",
        "Admis par un steward.",
    ),
    Reason.MANUAL_DENY: (
        "Refused by a steward.",
        "Refusé par un steward.",
    ),
    Reason.FEED_UNAVAILABLE: (
        "The gate cannot read its list of cancelled tickets right now: a steward will check "
        "your ticket.",
        "Le portique ne peut pas lire sa liste de billets annulés pour le moment : un steward "
        "va vérifier votre billet.",
    ),
    Reason.JOURNAL_UNAVAILABLE: (
        "The gate cannot record entries right now: a steward will help you.",
        "Le portique ne peut pas enregistrer les entrées pour le moment : un steward va "
        "vous aider.",
    ),
    Reason.SESSION_NOT_OPEN: (
        "Your session's gates open at {when}. Please come back then.",
        "Les portes de votre session ouvrent à {when}. Merci de revenir à ce moment-là.",
    ),
    Reason.SESSION_CLOSED: (
        "Your session's gates closed at {when}. Please see a steward.",
        "Les portes de votre session ont fermé à {when}. Adressez-vous à un steward.",
    ),
    Reason.SESSION_ELSEWHERE: (
        "This ticket's session is not served here: please go to {info}.",
        "La session de ce billet n'est pas accueillie ici : merci de vous rendre à {info}.",
    ),
    Reason.CATEGORY_ENTRANCE: (
        "For this session, your ticket's category enters at entrance {info}. Please go "
        "there.",
        "Pour cette session, la catégorie de votre billet entre par l'entrée {info}. Merci "
        "de vous y rendre.",
    ),
    Reason.OUTSIDE_ENTRY_WINDOW: (
        "Entry with this ticket is not open now: it opens again at {when}.",
        "L'entrée avec ce billet n'est pas ouverte maintenant : elle rouvre à {when}.",
    ),
    Reason.MAX_ENTRIES_REACHED: (
        "This ticket has used all of its {info} entries.",
        "Ce billet a utilisé toutes ses {info} entrées.",
    ),
    Reason.DAILY_LIMIT_REACHED: (
        "This ticket has used its {info} entries for today: it can enter again from {when}.",
        "Ce billet a utilisé ses {info} entrées du jour : il pourra entrer de nouveau à "
        "partir de {when}.",
    ),
    Reason.TOO_SOON: (
        "This ticket entered a short while ago: it can enter again from {when}.",
        "Ce billet est entré il y a peu : il pourra entrer de nouveau à partir de {when}.",
    ),
    Reason.RULE_NOT_MET: (
        "This ticket does not meet this session's entry rules now. Please see a steward.",
        "Ce billet ne remplit pas les règles d'entrée de cette session pour le moment. "
        "Adressez-vous à un steward.",
    ),
    Reason.RULE_UNEVALUABLE: (
        "The gate cannot check this session's entry rules for your ticket. Please see a "
        "steward.",
        "Le portique ne peut pas vérifier les règles d'entrée de cette session pour votre "
        "billet. Adressez-vous à un steward.",
    ),
    Reason.ACCESSIBLE_LANE: (
        "Your ticket is for the accessible lane ({info}): a steward will help you.",
        "Votre billet est prévu pour la file accessible ({info}) : un steward va vous aider.",
    ),
}


def sentence(reason: Reason, lang: Lang, **details: str) -> str:
    english, french = SENTENCES[reason]
    template = french if lang is Lang.FR else english
    return template.format_map(_Blank(details)) if "{" in template else template


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"
