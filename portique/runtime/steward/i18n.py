"""Every string the steward UI shows, in French and English: the one catalogue.

Reason sentences (what the gate says about a decision) are not here: they come with each
decision from the daemon, or from `portique.ticket.reasons` for journal entries, so the steward
reads
the very sentence the gate's display shows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from portique.ticket.reasons import Lang


class T(enum.StrEnum):
    """A string of the UI; its value names it in tests and logs."""

    APP_TITLE = "app_title"
    GATE_LINE = "gate_line"
    FEED_TITLE = "feed_title"
    FEED_EMPTY = "feed_empty"
    COL_TIME = "col_time"
    COL_VERDICT = "col_verdict"
    COL_TICKET = "col_ticket"
    COL_CATEGORY = "col_category"
    COL_ENTRANCE = "col_entrance"
    COL_REASON = "col_reason"
    COL_HOLDER = "col_holder"
    COL_ORDER = "col_order"
    COL_MATCH = "col_match"
    COL_GATE = "col_gate"
    COL_METHOD = "col_method"
    COL_STEWARD = "col_steward"
    COL_NOTE = "col_note"
    COL_ADMISSION = "col_admission"
    VERDICT_ADMIT = "verdict_admit"
    VERDICT_REFUSE = "verdict_refuse"
    VERDICT_STEWARD = "verdict_steward"
    BY_STEWARD = "by_steward"
    PASSAGE_VOIDED = "passage_voided"
    LOOKUP_TITLE = "lookup_title"
    LOOKUP_PLACEHOLDER = "lookup_placeholder"
    LOOKUP_HINT = "lookup_hint"
    LOOKUP_SEARCHING = "lookup_searching"
    LOOKUP_NONE = "lookup_none"
    LOOKUP_COUNT = "lookup_count"
    LOOKUP_FAILED = "lookup_failed"
    MATCH_TICKET_ID = "match_ticket_id"
    MATCH_ORDER_REF = "match_order_ref"
    MATCH_NAME = "match_name"
    MATCH_NAME_PREFIX = "match_name_prefix"
    MATCH_NAME_WORDS = "match_name_words"
    MATCH_NEAR = "match_near"
    STATUS_WAITING = "status_waiting"
    STATUS_READY = "status_ready"
    STATUS_NOT_READY = "status_not_ready"
    BANNER_NO_FEED = "banner_no_feed"
    READY_TITLE = "ready_title"
    READY_YES = "ready_yes"
    READY_NO = "ready_no"
    READY_UNKNOWN = "ready_unknown"
    READY_PASS = "ready_pass"
    READY_FAIL = "ready_fail"
    KEYS_READY = "keys_ready"
    CHECK_FEED = "check_feed"
    CHECK_KEYS = "check_keys"
    CHECK_CLOCK = "check_clock"
    CHECK_CAMERA = "check_camera"
    CHECK_RELAY = "check_relay"
    CHECK_FIRE_LOOP = "check_fire_loop"
    CHECK_JOURNAL = "check_journal"
    CHECK_MESH = "check_mesh"
    CHECK_UPLOAD = "check_upload"
    STATUS_FEED = "status_feed"
    STATUS_NO_FEED = "status_no_feed"
    STATUS_CLOCK_OK = "status_clock_ok"
    STATUS_CLOCK_BAD = "status_clock_bad"
    STATUS_CAMERA = "status_camera"
    STATUS_COUNTS = "status_counts"
    STATUS_STEWARD = "status_steward"
    AGE_SECONDS = "age_seconds"
    AGE_MINUTES = "age_minutes"
    AGE_HOURS = "age_hours"
    AGE_DAYS = "age_days"
    BANNER_FIRE_ACTIVE = "banner_fire_active"
    BANNER_FIRE_LATCHED = "banner_fire_latched"
    BANNER_CAMERA = "banner_camera"
    BANNER_LINK_CONNECTING = "banner_link_connecting"
    BANNER_LINK_DOWN = "banner_link_down"
    CAMERA_OPENING = "camera_opening"
    CAMERA_RECONNECTING = "camera_reconnecting"
    CAMERA_ENDED = "camera_ended"
    CAMERA_CLOSED = "camera_closed"
    KEYS_MAIN = "keys_main"
    KEYS_TICKET = "keys_ticket"
    KEYS_DIALOG = "keys_dialog"
    TICKET_TITLE = "ticket_title"
    FIELD_HOLDER = "field_holder"
    FIELD_ORDER = "field_order"
    FIELD_CATEGORY = "field_category"
    FIELD_ENTRANCES = "field_entrances"
    FIELD_GENERATION = "field_generation"
    FIELD_FLAGS = "field_flags"
    FIELD_STATE = "field_state"
    FLAG_PAPER = "flag_paper"
    FLAG_ACCESSIBLE = "flag_accessible"
    FLAG_REENTRY = "flag_reentry"
    FLAGS_NONE = "flags_none"
    STATE_LOADING = "state_loading"
    STATE_CANCELLED = "state_cancelled"
    STATE_INSIDE = "state_inside"
    STATE_IN_PROGRESS = "state_in_progress"
    STATE_EXITED = "state_exited"
    STATE_VOIDED = "state_voided"
    STATE_REFUSED = "state_refused"
    STATE_NOT_ADMITTED = "state_not_admitted"
    HISTORY_TITLE = "history_title"
    HISTORY_EMPTY = "history_empty"
    METHOD_CAMERA = "method_camera"
    METHOD_STEWARD = "method_steward"
    METHOD_PAPER = "method_paper"
    ADMISSION_OPEN = "admission_open"
    ADMISSION_PASSED = "admission_passed"
    ADMISSION_VOIDED = "admission_voided"
    ADMISSION_EXITED = "admission_exited"
    DIALOG_ADMIT_TITLE = "dialog_admit_title"
    DIALOG_DENY_TITLE = "dialog_deny_title"
    DIALOG_OTHER_PLACEHOLDER = "dialog_other_placeholder"
    DIALOG_SUPERVISOR_TITLE = "dialog_supervisor_title"
    DIALOG_SUPERVISOR_BODY = "dialog_supervisor_body"
    DIALOG_SUPERVISOR_PLACEHOLDER = "dialog_supervisor_placeholder"
    DIALOG_SUPERVISOR_PIN_PLACEHOLDER = "dialog_supervisor_pin_placeholder"
    ADMIT_PAPER = "admit_paper"
    ADMIT_PHONE = "admit_phone"
    ADMIT_APP = "admit_app"
    ADMIT_ASSISTED = "admit_assisted"
    DENY_NOT_HOLDER = "deny_not_holder"
    DENY_NOT_HERE = "deny_not_here"
    DENY_CONDUCT = "deny_conduct"
    DONE_ADMITTED = "done_admitted"
    DONE_DENIED = "done_denied"
    DONE_REFUSED = "done_refused"
    DONE_SENDING = "done_sending"
    ACK_DONE = "ack_done"
    ACK_REFUSED = "ack_refused"
    ACK_NOTHING = "ack_nothing"
    LANGUAGE_SET = "language_set"
    UNREACHABLE = "unreachable"


CATALOGUE: Mapping[T, tuple[str, str]] = {
    # key: (French, English)
    T.APP_TITLE: ("Portique · poste steward", "Portique · steward desk"),
    T.GATE_LINE: ("Portique {gate} · {event} · entrée {entrance} · steward {steward}",
                  "Gate {gate} · {event} · entrance {entrance} · steward {steward}"),
    T.FEED_TITLE: ("Décisions en direct", "Live decisions"),
    T.FEED_EMPTY: ("Aucune décision pour l'instant.", "No decision yet."),
    T.COL_TIME: ("Heure", "Time"),
    T.COL_VERDICT: ("Verdict", "Verdict"),
    T.COL_TICKET: ("Billet", "Ticket"),
    T.COL_CATEGORY: ("Catégorie", "Category"),
    T.COL_ENTRANCE: ("Entrée", "Entrance"),
    T.COL_REASON: ("Motif", "Reason"),
    T.COL_HOLDER: ("Titulaire", "Holder"),
    T.COL_ORDER: ("Commande", "Order"),
    T.COL_MATCH: ("Trouvé par", "Found by"),
    T.COL_GATE: ("Portique", "Gate"),
    T.COL_METHOD: ("Mode", "Method"),
    T.COL_STEWARD: ("Steward", "Steward"),
    T.COL_NOTE: ("Note", "Note"),
    T.COL_ADMISSION: ("Admission", "Admission"),
    T.VERDICT_ADMIT: ("ADMIS", "ADMIT"),
    T.VERDICT_REFUSE: ("REFUSÉ", "REFUSED"),
    T.VERDICT_STEWARD: ("STEWARD", "STEWARD"),
    T.BY_STEWARD: ("(steward {steward})", "(steward {steward})"),
    T.PASSAGE_VOIDED: ("personne n'est passé : admission annulée",
                       "nobody passed: admission voided"),
    T.LOOKUP_TITLE: ("Recherche manuelle", "Manual lookup"),
    T.LOOKUP_PLACEHOLDER: ("Commande, n° de billet ou nom du titulaire",
                           "Order reference, ticket id or holder name"),
    T.LOOKUP_HINT: ("Entrée pour chercher ; majuscules, accents et petites fautes "
                    "sont pardonnés.",
                    "Enter to search; case, accents and small typos are forgiven."),
    T.LOOKUP_SEARCHING: ("Recherche de « {query} »…", "Searching for “{query}”…"),
    T.LOOKUP_NONE: ("Aucun billet trouvé pour « {query} ».", "No ticket found for “{query}”."),
    T.LOOKUP_COUNT: ("{count} billet(s) pour « {query} » : Entrée pour ouvrir.",
                     "{count} ticket(s) for “{query}”: Enter to open."),
    T.LOOKUP_FAILED: ("Recherche impossible : {error}", "Lookup failed: {error}"),
    T.MATCH_TICKET_ID: ("n° de billet", "ticket id"),
    T.MATCH_ORDER_REF: ("commande", "order"),
    T.MATCH_NAME: ("nom", "name"),
    T.MATCH_NAME_PREFIX: ("début du nom", "name start"),
    T.MATCH_NAME_WORDS: ("mots du nom", "name words"),
    T.MATCH_NEAR: ("nom proche", "similar name"),
    T.STATUS_WAITING: ("En attente de l'état du portique…", "Waiting for the gate's status…"),
    T.STATUS_READY: ("Prêt (F6)", "Ready (F6)"),
    T.STATUS_NOT_READY: ("PAS PRÊT (F6)", "NOT READY (F6)"),
    T.BANNER_NO_FEED: ("PAS DE FLUX DE RÉVOCATIONS : les billets revendus ne peuvent pas "
                       "être refusés.",
                       "NO REVOCATION FEED: resold tickets cannot be refused."),
    T.READY_TITLE: ("Prêt pour l'ouverture des portes ?", "Ready for doors?"),
    T.READY_YES: ("PRÊT : tous les contrôles passent.", "READY: every check passes."),
    T.READY_NO: ("PAS PRÊT : {failing}.", "NOT READY: {failing}."),
    T.READY_UNKNOWN: ("Le portique n'a pas encore donné ses contrôles.",
                      "The gate has not reported its checks yet."),
    T.READY_PASS: ("ok", "ok"),
    T.READY_FAIL: ("ÉCHEC", "FAIL"),
    T.KEYS_READY: ("Échap Retour · F4 English · F8 Acquitter",
                   "Esc Back · F4 Français · F8 Acknowledge"),
    T.CHECK_FEED: ("Flux de révocations", "Revocation feed"),
    T.CHECK_KEYS: ("Clés des émetteurs", "Issuer keys"),
    T.CHECK_CLOCK: ("Horloge", "Clock"),
    T.CHECK_CAMERA: ("Caméra", "Camera"),
    T.CHECK_RELAY: ("Relais de la serrure", "Lock relay"),
    T.CHECK_FIRE_LOOP: ("Boucle incendie", "Fire-alarm loop"),
    T.CHECK_JOURNAL: ("Journal", "Journal"),
    T.CHECK_MESH: ("Autres portiques", "Other gates"),
    T.CHECK_UPLOAD: ("Envoi du journal", "Journal upload"),
    T.STATUS_FEED: ("Flux n°{sequence} ({age})", "Feed #{sequence} ({age} old)"),
    T.STATUS_NO_FEED: ("Aucun flux", "No feed"),
    T.STATUS_CLOCK_OK: ("Horloge fiable", "Clock trusted"),
    T.STATUS_CLOCK_BAD: ("Horloge NON fiable", "Clock NOT trusted"),
    T.STATUS_CAMERA: ("Caméra {fps} im/s", "Camera {fps} fps"),
    T.STATUS_COUNTS: ("Admis {admitted} · Refusés {refused} · Steward {steward}",
                      "Admitted {admitted} · Refused {refused} · Steward {steward}"),
    T.STATUS_STEWARD: ("Steward {steward}", "Steward {steward}"),
    T.AGE_SECONDS: ("{n} s", "{n} s"),
    T.AGE_MINUTES: ("{n} min", "{n} min"),
    T.AGE_HOURS: ("{n} h", "{n} h"),
    T.AGE_DAYS: ("{n} j", "{n} d"),
    T.BANNER_FIRE_ACTIVE: ("ALARME INCENDIE : portique libéré, sortie libre pour tous.",
                           "FIRE ALARM: turnstile released, free egress for everyone."),
    T.BANNER_FIRE_LATCHED: ("Alarme incendie terminée (boucle refermée), sortie libre "
                            "maintenue : F8 pour acquitter et remettre le portique en service.",
                            "Fire alarm over (loop closed again), free egress stays on: "
                            "F8 to acknowledge and return the gate to service."),
    T.BANNER_CAMERA: ("CAMÉRA PERDUE ({state}) : le portique ne lit plus les billets, "
                      "utilisez la recherche manuelle.",
                      "CAMERA LOST ({state}): the gate cannot read tickets, "
                      "use the manual lookup."),
    T.BANNER_LINK_CONNECTING: ("Connexion au portique ({path})…",
                               "Connecting to the gate ({path})…"),
    T.BANNER_LINK_DOWN: ("PORTIQUE INJOIGNABLE ({path}) : {error}. Nouvel essai dans "
                         "{seconds} s.",
                         "GATE UNREACHABLE ({path}): {error}. Retrying in {seconds} s."),
    T.CAMERA_OPENING: ("ouverture", "opening"),
    T.CAMERA_RECONNECTING: ("reconnexion", "reconnecting"),
    T.CAMERA_ENDED: ("plus d'images", "no more frames"),
    T.CAMERA_CLOSED: ("fermée", "closed"),
    T.KEYS_MAIN: ("F2 Recherche · Entrée Ouvrir · F4 English · F8 Acquitter l'alarme · "
                  "Ctrl+Q Quitter",
                  "F2 Lookup · Enter Open · F4 Français · F8 Acknowledge alarm · "
                  "Ctrl+Q Quit"),
    T.KEYS_TICKET: ("A Admettre · D Refuser · Échap Retour · F4 English · F8 Acquitter",
                    "A Admit · D Deny · Esc Back · F4 Français · F8 Acknowledge"),
    T.KEYS_DIALOG: ("Entrée Valider · Échap Annuler", "Enter Confirm · Esc Cancel"),
    T.TICKET_TITLE: ("Billet {ticket_id}", "Ticket {ticket_id}"),
    T.FIELD_HOLDER: ("Titulaire", "Holder"),
    T.FIELD_ORDER: ("Commande", "Order"),
    T.FIELD_CATEGORY: ("Catégorie", "Category"),
    T.FIELD_ENTRANCES: ("Entrées", "Entrances"),
    T.FIELD_GENERATION: ("Génération", "Generation"),
    T.FIELD_FLAGS: ("Options", "Flags"),
    T.FIELD_STATE: ("État", "State"),
    T.FLAG_PAPER: ("imprimé", "printed"),
    T.FLAG_ACCESSIBLE: ("accessibilité", "accessible"),
    T.FLAG_REENTRY: ("ré-entrée", "re-entry"),
    T.FLAGS_NONE: ("aucune", "none"),
    T.STATE_LOADING: ("Chargement de l'historique…", "Loading the history…"),
    T.STATE_CANCELLED: ("ANNULÉ : ce billet n'est plus valable.",
                        "CANCELLED: this ticket is void."),
    T.STATE_INSIDE: ("DÉJÀ ENTRÉ : admis au portique {gate} à {time}.",
                     "ALREADY INSIDE: admitted at gate {gate} at {time}."),
    T.STATE_IN_PROGRESS: ("Admission en cours au portique {gate} ({time}).",
                          "Admission in progress at gate {gate} ({time})."),
    T.STATE_EXITED: ("Sorti (admis au portique {gate} à {time}).",
                     "Went out (admitted at gate {gate} at {time})."),
    T.STATE_VOIDED: ("Pas entré : admission de {time} annulée, personne n'est passé.",
                     "Not inside: the admission of {time} was voided, nobody passed."),
    T.STATE_REFUSED: ("Pas entré : refusé à {time}.", "Not inside: refused at {time}."),
    T.STATE_NOT_ADMITTED: ("Pas encore entré.", "Not admitted yet."),
    T.HISTORY_TITLE: ("Historique à ce portique", "History at this gate"),
    T.HISTORY_EMPTY: ("Rien d'enregistré pour ce billet.", "Nothing recorded for this ticket."),
    T.METHOD_CAMERA: ("caméra", "camera"),
    T.METHOD_STEWARD: ("steward", "steward"),
    T.METHOD_PAPER: ("imprimé", "paper"),
    T.ADMISSION_OPEN: ("en cours", "open"),
    T.ADMISSION_PASSED: ("passé", "passed"),
    T.ADMISSION_VOIDED: ("annulée", "voided"),
    T.ADMISSION_EXITED: ("sorti", "exited"),
    T.DIALOG_ADMIT_TITLE: ("Admettre {ticket_id} : pourquoi ?", "Admit {ticket_id}: why?"),
    T.DIALOG_DENY_TITLE: ("Refuser {ticket_id} : pourquoi ?", "Deny {ticket_id}: why?"),
    T.DIALOG_OTHER_PLACEHOLDER: ("Autre motif, en clair", "Another reason, in words"),
    T.DIALOG_SUPERVISOR_TITLE: ("Accord d'un superviseur nécessaire",
                                "Supervisor override needed"),
    T.DIALOG_SUPERVISOR_BODY: ("Le portique refuse : {error}", "The gate refuses: {error}"),
    T.DIALOG_SUPERVISOR_PLACEHOLDER: ("Identifiant du superviseur", "Supervisor's id"),
    T.DIALOG_SUPERVISOR_PIN_PLACEHOLDER: ("Code PIN du superviseur (masqué)",
                                          "Supervisor's PIN (hidden)"),
    T.ADMIT_PAPER: ("Confirmation imprimée vérifiée", "Printed confirmation checked"),
    T.ADMIT_PHONE: ("Téléphone déchargé, identité vérifiée",
                    "Phone out of battery, identity checked"),
    T.ADMIT_APP: ("Application en panne, billet vérifié", "App not working, ticket checked"),
    T.ADMIT_ASSISTED: ("Entrée accompagnée", "Assisted entry"),
    T.DENY_NOT_HOLDER: ("Pas le titulaire du billet", "Not the ticket holder"),
    T.DENY_NOT_HERE: ("Billet non valable à ce portique", "Ticket not valid at this gate"),
    T.DENY_CONDUCT: ("Comportement", "Conduct"),
    T.DONE_ADMITTED: ("{ticket_id} admis : {reason}", "{ticket_id} admitted: {reason}"),
    T.DONE_DENIED: ("{ticket_id} refusé : {reason}", "{ticket_id} denied: {reason}"),
    T.DONE_REFUSED: ("Le portique refuse : {error}", "The gate refuses: {error}"),
    T.DONE_SENDING: ("Envoi au portique…", "Sending to the gate…"),
    T.ACK_DONE: ("Alarme incendie acquittée : portique de nouveau en service.",
                 "Fire alarm acknowledged: the gate is back in service."),
    T.ACK_REFUSED: ("Acquittement refusé : {error}", "Acknowledge refused: {error}"),
    T.ACK_NOTHING: ("Aucune alarme incendie à acquitter.", "No fire alarm to acknowledge."),
    T.LANGUAGE_SET: ("Langue : français", "Language: English"),
    T.UNREACHABLE: ("portique injoignable : {error}", "gate unreachable: {error}"),
}


def tr(key: T, lang: Lang, **values: object) -> str:
    """The string `key` in `lang`, its {placeholders} filled from `values`."""
    french, english = CATALOGUE[key]
    template = french if lang is Lang.FR else english
    return template.format(**values) if values else template


def other(lang: Lang) -> Lang:
    """The language the switch key goes to."""
    return Lang.EN if lang is Lang.FR else Lang.FR
