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
    BANNER_TRAINING = "banner_training"
    READY_TITLE = "ready_title"
    READY_YES = "ready_yes"
    READY_NO = "ready_no"
    READY_UNKNOWN = "ready_unknown"
    READY_PASS = "ready_pass"
    READY_FAIL = "ready_fail"
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
    STATUS_ZONE = "status_zone"
    ACCESSIBLE_MARK = "accessible_mark"
    AGE_SECONDS = "age_seconds"
    AGE_MINUTES = "age_minutes"
    AGE_HOURS = "age_hours"
    AGE_DAYS = "age_days"
    BANNER_FIRE_ACTIVE = "banner_fire_active"
    BANNER_FIRE_LATCHED = "banner_fire_latched"
    BANNER_CAMERA = "banner_camera"
    BANNER_LINK_CONNECTING = "banner_link_connecting"
    BANNER_LINK_DOWN = "banner_link_down"
    CAMERA_STARTING = "camera_starting"
    CAMERA_LOST = "camera_lost"
    CAMERA_BLACK = "camera_black"
    CAMERA_FROZEN = "camera_frozen"
    CAMERA_ENDED = "camera_ended"
    CAMERA_CLOSED = "camera_closed"
    HELP_TITLE = "help_title"
    HELP_CLOSE = "help_close"
    HELP_EVERYWHERE = "help_everywhere"
    HELP_MAIN = "help_main"
    HELP_TICKET = "help_ticket"
    HELP_DIALOG = "help_dialog"
    HELP_KEY_HELP = "help_key_help"
    HELP_KEY_LIVE = "help_key_live"
    HELP_KEY_LANGUAGE = "help_key_language"
    HELP_KEY_ACK = "help_key_ack"
    HELP_KEY_READY = "help_key_ready"
    HELP_KEY_QUIT = "help_key_quit"
    HELP_KEY_LOOKUP = "help_key_lookup"
    HELP_KEY_OPEN = "help_key_open"
    HELP_KEY_ROWS = "help_key_rows"
    HELP_KEY_TAB = "help_key_tab"
    HELP_KEY_ADMIT = "help_key_admit"
    HELP_KEY_DENY = "help_key_deny"
    HELP_KEY_BACK = "help_key_back"
    HELP_KEY_PRESET = "help_key_preset"
    HELP_KEY_CONFIRM = "help_key_confirm"
    HELP_KEY_CANCEL = "help_key_cancel"
    BAR_HELP = "bar_help"
    BAR_LIVE = "bar_live"
    BAR_LANGUAGE = "bar_language"
    BAR_ACK = "bar_ack"
    BAR_READY = "bar_ready"
    BAR_QUIT = "bar_quit"
    BAR_LOOKUP = "bar_lookup"
    BAR_OPEN = "bar_open"
    BAR_ADMIT = "bar_admit"
    BAR_DENY = "bar_deny"
    BAR_BACK = "bar_back"
    BAR_CONFIRM = "bar_confirm"
    BAR_CANCEL = "bar_cancel"
    QUIT_HINT = "quit_hint"
    VERDICT_VOIDED = "verdict_voided"
    DETAIL_LINE = "detail_line"
    STALE_STATUS = "stale_status"
    STALE_BANNER = "stale_banner"
    CAUGHT_UP = "caught_up"
    NOTE_OVERRIDE = "note_override"
    REFUSAL_LIMIT = "refusal_limit"
    REFUSAL_NOT_IN_MANIFEST = "refusal_not_in_manifest"
    REFUSAL_VOID = "refusal_void"
    REFUSAL_ALREADY_INSIDE = "refusal_already_inside"
    REFUSAL_WRONG_ENTRANCE = "refusal_wrong_entrance"
    REFUSAL_EXIT_GATE = "refusal_exit_gate"
    REFUSAL_INVALID_TICKET_ID = "refusal_invalid_ticket_id"
    REFUSAL_BUSY = "refusal_busy"
    REFUSAL_INVALID = "refusal_invalid"
    REFUSAL_SUPERVISOR_REFUSED = "refusal_supervisor_refused"
    REFUSAL_OVERRIDE_LOCKED = "refusal_override_locked"
    REFUSAL_SUPERVISORS_UNAVAILABLE = "refusal_supervisors_unavailable"
    REFUSAL_LOOP_OPEN = "refusal_loop_open"
    REFUSAL_NO_MANIFEST = "refusal_no_manifest"
    REFUSAL_TIMEOUT = "refusal_timeout"
    REFUSAL_TOO_LONG = "refusal_too_long"
    REFUSAL_OTHER = "refusal_other"
    LINK_NO_SOCKET = "link_no_socket"
    LINK_REFUSED = "link_refused"
    LINK_PERMISSION = "link_permission"
    LINK_TIMEOUT = "link_timeout"
    LINK_UNREADABLE = "link_unreadable"
    LINK_CLOSED = "link_closed"
    LINK_WATCH_REFUSED = "link_watch_refused"
    LINK_OTHER = "link_other"
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
    T.BANNER_TRAINING: ("FORMATION : portique d'entraînement, broches simulées, aucune vraie "
                        "serrure.",
                        "TRAINING: a training gate, simulated pins, no real lock."),
    T.READY_TITLE: ("Prêt pour l'ouverture des portes ?", "Ready for doors?"),
    T.READY_YES: ("PRÊT : tous les contrôles passent.", "READY: every check passes."),
    T.READY_NO: ("PAS PRÊT : {failing}.", "NOT READY: {failing}."),
    T.READY_UNKNOWN: ("Le portique n'a pas encore donné ses contrôles.",
                      "The gate has not reported its checks yet."),
    T.READY_PASS: ("ok", "ok"),
    T.READY_FAIL: ("ÉCHEC", "FAIL"),
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
    T.STATUS_ZONE: ("{zone} ({session}) : {inside} présents", "{zone} ({session}): {inside} "
                    "inside"),
    T.ACCESSIBLE_MARK: ("accessible", "accessible"),
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
    T.BANNER_CAMERA: ("{state} {device} : le portique ne lit plus les billets ({why}), "
                      "utilisez la recherche manuelle.",
                      "{state} {device}: the gate cannot read tickets ({why}), "
                      "use the manual lookup."),
    T.BANNER_LINK_CONNECTING: ("Connexion au portique ({path})…",
                               "Connecting to the gate ({path})…"),
    T.BANNER_LINK_DOWN: ("PORTIQUE INJOIGNABLE ({path}) : {error}. Nouvel essai dans "
                         "{seconds} s.",
                         "GATE UNREACHABLE ({path}): {error}. Retrying in {seconds} s."),
    T.CAMERA_STARTING: ("CAMÉRA EN DÉMARRAGE", "CAMERA STARTING"),
    T.CAMERA_LOST: ("CAMÉRA PERDUE", "CAMERA LOST"),
    T.CAMERA_BLACK: ("CAMÉRA NOIRE", "CAMERA BLACK"),
    T.CAMERA_FROZEN: ("CAMÉRA FIGÉE", "CAMERA FROZEN"),
    T.CAMERA_ENDED: ("CAMÉRA : plus d'images", "CAMERA: no more frames"),
    T.CAMERA_CLOSED: ("CAMÉRA FERMÉE", "CAMERA CLOSED"),
    T.HELP_TITLE: ("Aide : toutes les touches", "Help: every key"),
    T.HELP_CLOSE: ("Échap, F1 ou ? pour fermer l'aide.", "Esc, F1 or ? closes the help."),
    T.HELP_EVERYWHERE: ("Partout", "Everywhere"),
    T.HELP_MAIN: ("Écran principal", "Main screen"),
    T.HELP_TICKET: ("Fiche d'un billet (Échap aussi sur la liste F6)",
                    "A ticket's screen (Esc also on F6's checklist)"),
    T.HELP_DIALOG: ("Fenêtres de choix (motif, superviseur)",
                    "Dialogs (reason, supervisor)"),
    T.HELP_KEY_HELP: ("Cette aide (? hors d'un champ de saisie)",
                      "This help (? outside a text field)"),
    T.HELP_KEY_LIVE: ("Décisions en direct : revenir à la liste, curseur sur la dernière",
                      "Live decisions: back to the list, on the latest one"),
    T.HELP_KEY_LANGUAGE: ("Passer en anglais", "Switch to French"),
    T.HELP_KEY_READY: ("Prêt pour l'ouverture ? La liste de contrôle, un verdict par ligne",
                       "Ready for doors? The gate's checklist, one verdict per line"),
    T.HELP_KEY_ACK: ("Acquitter l'alarme incendie (boucle refermée)",
                     "Acknowledge the fire alarm (loop closed again)"),
    T.HELP_KEY_QUIT: ("Quitter l'écran steward (le portique continue)",
                      "Quit the steward screen (the gate keeps working)"),
    T.HELP_KEY_LOOKUP: ("Recherche manuelle : commande, n° de billet ou nom",
                        "Manual lookup: order, ticket id or name"),
    T.HELP_KEY_OPEN: ("Ouvrir le billet de la ligne choisie (résultats), chercher son "
                      "billet (liste en direct), lancer la recherche (champ)",
                      "Open the chosen row's ticket (results), look its ticket up (live "
                      "list), search (text field)"),
    T.HELP_KEY_ROWS: ("Choisir une ligne", "Choose a row"),
    T.HELP_KEY_TAB: ("Passer d'une zone à l'autre (recherche, résultats, liste en direct)",
                     "Move between panes (lookup, results, live list)"),
    T.HELP_KEY_ADMIT: ("Admettre à la main (motif demandé)", "Admit by hand (asks why)"),
    T.HELP_KEY_DENY: ("Refuser (motif demandé, enregistré)",
                      "Deny (asks why, journalled)"),
    T.HELP_KEY_BACK: ("Retour à l'écran principal", "Back to the main screen"),
    T.HELP_KEY_PRESET: ("Choisir un motif proposé", "Choose a proposed reason"),
    T.HELP_KEY_CONFIRM: ("Valider (motif choisi, motif écrit, identifiant puis PIN)",
                         "Confirm (chosen reason, written reason, id then PIN)"),
    T.HELP_KEY_CANCEL: ("Annuler : rien n'est envoyé ni enregistré",
                        "Cancel: nothing is sent or recorded"),
    T.BAR_HELP: ("Aide", "Help"),
    T.BAR_LIVE: ("Direct", "Live"),
    T.BAR_LANGUAGE: ("English", "Français"),
    T.BAR_ACK: ("Acquitter", "Acknowledge"),
    T.BAR_READY: ("Prêt ?", "Ready?"),
    T.BAR_QUIT: ("Quitter", "Quit"),
    T.BAR_LOOKUP: ("Recherche", "Lookup"),
    T.BAR_OPEN: ("Ouvrir", "Open"),
    T.BAR_ADMIT: ("Admettre", "Admit"),
    T.BAR_DENY: ("Refuser", "Deny"),
    T.BAR_BACK: ("Retour", "Back"),
    T.BAR_CONFIRM: ("Valider", "Confirm"),
    T.BAR_CANCEL: ("Annuler", "Cancel"),
    T.QUIT_HINT: ("Ctrl+Q pour quitter l'écran steward.", "Ctrl+Q quits the steward screen."),
    T.VERDICT_VOIDED: ("ANNULÉ", "VOIDED"),
    T.DETAIL_LINE: ("{time} · {ticket} · {category} · entrée {entrances} : {sentence}",
                    "{time} · {ticket} · {category} · entrance {entrances}: {sentence}"),
    T.STALE_STATUS: ("DERNIER ÉTAT CONNU ({time}), portique injoignable :",
                     "LAST KNOWN ({time}), gate unreachable:"),
    T.STALE_BANNER: ("{text} (dernier état connu, {time})", "{text} (last known, {time})"),
    T.CAUGHT_UP: ("{count} décision(s) prise(s) pendant la coupure ajoutée(s) à la liste.",
                  "{count} decision(s) made while disconnected added to the list."),
    T.NOTE_OVERRIDE: ("{reason} (accord du superviseur {supervisor})",
                      "{reason} (override by {supervisor})"),
    T.REFUSAL_LIMIT: ("limite d'admissions manuelles atteinte : un superviseur doit "
                      "valider",
                      "manual admit limit reached: a supervisor must override"),
    T.REFUSAL_NOT_IN_MANIFEST: ("billet {ticket_id} absent de la liste de l'événement : "
                                "un superviseur doit valider",
                                "ticket {ticket_id} is not in this event's manifest: a "
                                "supervisor must override"),
    T.REFUSAL_VOID: ("billet {ticket_id} annulé ou remplacé par un exemplaire plus récent : "
                     "un superviseur doit valider",
                     "ticket {ticket_id} is cancelled or superseded by a newer copy: a "
                     "supervisor must override"),
    T.REFUSAL_ALREADY_INSIDE: ("billet {ticket_id} déjà admis et pas ressorti",
                               "ticket {ticket_id} was already admitted and has not gone out"),
    T.REFUSAL_WRONG_ENTRANCE: ("billet {ticket_id} pour l'entrée {entrances}, pas celle-ci : "
                               "un superviseur doit valider",
                               "ticket {ticket_id} is for entrance {entrances}, not this "
                               "one: a supervisor must override"),
    T.REFUSAL_EXIT_GATE: ("ce portique enregistre les sorties : admettez le billet à un "
                          "portique d'entrée",
                          "this gate records exits: admit the ticket at an entry gate"),
    T.REFUSAL_INVALID_TICKET_ID: ("{ticket_id} n'est pas un numéro de billet",
                                  "{ticket_id} is not a ticket id"),
    T.REFUSAL_BUSY: ("le portique est occupé : réessayez dans un instant",
                     "the gate is busy: try again in a moment"),
    T.REFUSAL_INVALID: ("demande refusée par le portique (champ invalide)",
                        "the gate refused the request (a field is not valid)"),
    T.REFUSAL_SUPERVISOR_REFUSED: ("superviseur inconnu ou PIN faux",
                                   "unknown supervisor or wrong PIN"),
    T.REFUSAL_OVERRIDE_LOCKED: ("trop d'essais refusés : plus aucun accord de superviseur "
                                "pour un moment, appelez le responsable sécurité",
                                "too many refused attempts: no supervisor override for a "
                                "while, call the security officer"),
    T.REFUSAL_SUPERVISORS_UNAVAILABLE: ("le fichier des superviseurs est inutilisable : "
                                        "aucun accord possible, appelez le technicien",
                                        "the supervisors' file cannot be used: no override "
                                        "possible, call the technician"),
    T.REFUSAL_LOOP_OPEN: ("la boucle incendie est encore ouverte",
                          "the fire-alarm loop is still open"),
    T.REFUSAL_NO_MANIFEST: ("ce portique n'a pas de liste des billets",
                            "this gate has no manifest"),
    T.REFUSAL_TIMEOUT: ("le portique n'a pas reçu la demande à temps",
                        "the gate did not receive the request in time"),
    T.REFUSAL_TOO_LONG: ("demande trop longue", "request too long"),
    T.REFUSAL_OTHER: ("refus du portique", "the gate's refusal"),
    T.LINK_NO_SOCKET: ("pas de socket (le programme du portique tourne-t-il ?)",
                       "no socket (is the gate daemon running?)"),
    T.LINK_REFUSED: ("connexion refusée (le programme du portique tourne-t-il ?)",
                     "connection refused (is the gate daemon running?)"),
    T.LINK_PERMISSION: ("accès refusé (êtes-vous dans le groupe steward du portique ?)",
                        "permission denied (are you in the gate's steward group?)"),
    T.LINK_TIMEOUT: ("pas de réponse à temps", "no answer in time"),
    T.LINK_UNREADABLE: ("réponse illisible", "unreadable answer"),
    T.LINK_CLOSED: ("le programme du portique a fermé la connexion",
                    "the gate daemon closed the connection"),
    T.LINK_WATCH_REFUSED: ("le portique refuse le suivi en direct pour l'instant",
                           "the gate refuses the live stream for now"),
    T.LINK_OTHER: ("erreur de connexion", "connection error"),
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
