"""Rehearsal with real phones: test tickets minted in a batch with their feed, and a page a
phone opens to hold one and show its live rotating code (docs/wallet.md).

The page is the reference for the phone side of docs/credential.md: level 1 comes from
the issuer, level 2 is signed in the browser every step with WebCrypto's Ed25519. A test
ticket's device key is handed to the page on purpose (it is minted with the ticket and
never a real holder's); every page says TEST in a banner nobody can miss, and the
tickets' category is TEST.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from portique import keyfiles
from portique.base.errors import GateError
from portique.base.timeparse import format_time
from portique.revocation.format import ManifestEntry
from portique.revocation.publish import FeedState, PublishResult, publish
from portique.ticket import credential
from portique.ticket.credential import Flag, TicketFields
from portique.ticket.trust import KeyRole

WALLET_FORMAT = "portique-rehearsal-wallet/1"
CATEGORY = "TEST"
_STATIC = ("wallet.js", "wallet.css", "vendor/qrcode.js")


class WalletError(GateError, ValueError):
    """A rehearsal batch that cannot be minted or served; the message says why."""


@dataclass(frozen=True)
class Minted:
    ticket_id: str
    level1: bytes
    device_key: Path
    wallet: Path


@dataclass(frozen=True)
class MintResult:
    tickets: list[Minted]
    feed: PublishResult


def mint(out: Path, *, issuer_key: Path, feed_key: Path, event: str, count: int,
         valid_from: int, valid_until: int, entrances: frozenset[int], now: int,
         prefix: str = "TEST-", issuer_kid: str | None = None,
         feed_kid: str | None = None) -> MintResult:
    """Mint `count` rehearsal tickets of `event` into `out`: ``devices/`` (each ticket's
    device key pair), ``wallet/`` (what the page shows), and ``feed/`` (the event's signed
    feed, its manifest listing every ticket for the stewards' lookup)."""
    if not 1 <= count <= 10_000:
        raise WalletError(f"--count: 1 to 10000 tickets, got {count}")
    if (out / "wallet").exists() and any((out / "wallet").iterdir()):
        raise WalletError(f"{out}/wallet: already holds a batch; mint into a new folder")
    issuer = keyfiles.load_private_key(issuer_key)
    feed = keyfiles.load_private_key(feed_key)
    kid = issuer_kid or issuer_key.name.removesuffix(".key")
    width = max(3, len(str(count)))
    minted: list[Minted] = []
    manifest: dict[str, ManifestEntry] = {}
    for n in range(1, count + 1):
        ticket_id = f"{prefix}{n:0{width}d}"
        device = Ed25519PrivateKey.generate()
        fields = TicketFields(kid=kid, event=event, ticket_id=ticket_id, generation=0,
                              valid_from=valid_from, valid_until=valid_until,
                              entrances=entrances, category=CATEGORY, flags=Flag(0),
                              device_key=device.public_key().public_bytes_raw())
        try:
            level1 = credential.issue(fields, issuer)
        except GateError as exc:
            raise WalletError(f"ticket {ticket_id}: {exc}") from None
        pair = keyfiles.new_key_pair(out / "devices", ticket_id, role=KeyRole.DEVICE,
                                     private_key=device)
        wallet = out / "wallet" / f"{ticket_id}.json"
        wallet.parent.mkdir(parents=True, exist_ok=True)
        wallet.write_text(json.dumps(wallet_document(level1, device), indent=2) + "\n",
                          encoding="utf-8")
        minted.append(Minted(ticket_id, level1, pair.private_path, wallet))
        manifest[ticket_id] = ManifestEntry(ticket_id=ticket_id, generation=0,
                                            order_ref=f"TEST-ORDER-{n:0{width}d}",
                                            holder_name=f"Test holder {n}", category=CATEGORY,
                                            entrances=entrances, flags=Flag(0))
    result = publish(out_dir=out / "feed", event=event,
                     state=FeedState(revocations={}, manifest=manifest), key=feed,
                     kid=feed_kid or feed_key.name.removesuffix(".key"), now=now,
                     ends_at=valid_until)
    return MintResult(minted, result)


def wallet_document(level1: bytes, device: Ed25519PrivateKey) -> dict[str, object]:
    fields = credential.parse_level1(level1)
    pkcs8 = device.private_bytes(serialization.Encoding.DER,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return {
        "format": WALLET_FORMAT, "test": True,
        "ticket_id": fields.ticket_id, "event": fields.event, "kid": fields.kid,
        "category": fields.category, "generation": fields.generation,
        "valid_from": format_time(fields.valid_from),
        "valid_until": format_time(fields.valid_until),
        "entrances": sorted(fields.entrances),
        "level1": base64.b64encode(level1).decode("ascii"),
        "device_key_pkcs8": base64.b64encode(pkcs8).decode("ascii"),
    }


def load_wallets(folder: Path) -> dict[str, dict[str, object]]:
    """The batch's wallets by ticket id (a folder made by `mint`, or its wallet/)."""
    where = folder / "wallet" if (folder / "wallet").is_dir() else folder
    wallets: dict[str, dict[str, object]] = {}
    for path in sorted(where.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WalletError(f"{path}: not a wallet file ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != WALLET_FORMAT \
                or doc.get("test") is not True:
            raise WalletError(f"{path}: not a rehearsal wallet ({WALLET_FORMAT}, test true)")
        wallets[str(doc["ticket_id"])] = doc
    if not wallets:
        raise WalletError(f"{where}: no wallet files; make a batch with `gate wallet mint`")
    return wallets


BANNER = ('<div class="test-banner" id="test-banner">TEST · NOT A TICKET · BILLET DE TEST'
          '<small>rehearsal ticket: admits nobody at a real event / billet de répétition : '
          "ne fait entrer personne à un vrai événement</small></div>")


def page(doc: dict[str, object]) -> str:
    e = html.escape
    data = json.dumps(doc).replace("<", "\\u003c")
    rows = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in (
        ("event", doc["event"]), ("ticket", doc["ticket_id"]),
        ("entrances", ", ".join(str(x) for x in doc["entrances"])),  # type: ignore[attr-defined]
        ("valid", f"{doc['valid_from']} → {doc['valid_until']}"),
        ("category", doc["category"])))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TEST ticket {e(str(doc["ticket_id"]))}</title>
<link rel="stylesheet" href="/static/wallet.css"></head>
<body data-state="loading">
{BANNER}
<main>
<div class="ticket"><h1>TEST {e(str(doc["ticket_id"]))}</h1><dl>{rows}</dl></div>
<div class="code-box"><canvas id="qr" width="1" height="1"></canvas></div>
<div class="progress"><div id="bar"></div></div>
<div id="status">loading…</div>
<div id="code"></div>
</main>
{BANNER}
<script type="application/json" id="wallet-data">{data}</script>
<script src="/static/vendor/qrcode.js"></script>
<script src="/static/wallet.js"></script>
</body></html>
"""


def index(wallets: dict[str, dict[str, object]]) -> str:
    e = html.escape
    items = "".join(f'<li><a href="/t/{e(t)}">{e(t)}</a> ({e(str(w["event"]))})</li>'
                    for t, w in wallets.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TEST wallets</title><link rel="stylesheet" href="/static/wallet.css"></head>
<body>{BANNER}<main><h1>Rehearsal tickets / billets de répétition</h1>
<p>Open one on a phone, hold it to the gate.</p>
<ul class="wallets">{items}</ul></main></body></html>
"""


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    import ipaddress

    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return alt


def _reusable(cert_path: Path, key_path: Path, names: list[str]) -> bool:
    """The folder's certificate and key are kept when they still fit: a P-256 pair that
    matches, not expired within a day, naming every requested host."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    public = cert.public_key()
    if not (isinstance(key, ec.EllipticCurvePrivateKey)
            and isinstance(public, ec.EllipticCurvePublicKey)
            and isinstance(public.curve, ec.SECP256R1)
            and key.public_key().public_numbers() == public.public_numbers()):
        return False
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
        return False
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return all(name in present for name in _alt_names(names))


def self_signed(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for the test network's name(s) or address(es): a phone's
    browser gives WebCrypto only to secure pages (HTTPS, or this machine itself).

    ECDSA P-256, the key type every browser accepts (Chromium refuses an Ed25519 server
    certificate in the handshake). The certificate and key already in ``folder`` are
    reused while they fit (same key type, still valid, naming every requested host), so
    each phone accepts the certificate once, not at every start."""
    cert_path, key_path = folder / "wallet-cert.pem", folder / "wallet-key.pem"
    if _reusable(cert_path, key_path, names):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"portique TEST {names[0]}")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class WalletServer:
    """Serves a batch's wallets: ``/`` the list, ``/t/<ticket>`` a ticket's page."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.wallets = load_wallets(folder)
        static = {name: (resources.files(__package__) / "static" / name).read_bytes()
                  for name in _STATIC}
        wallets = self.wallets

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                kinds = {".js": "text/javascript", ".css": "text/css"}
                if path == "/":
                    self._send(200, "text/html; charset=utf-8", index(wallets).encode())
                elif path.startswith("/t/") and path[3:] in wallets:
                    self._send(200, "text/html; charset=utf-8",
                               page(wallets[path[3:]]).encode())
                elif path.startswith("/static/") and path[8:] in static:
                    self._send(200, kinds[Path(path).suffix] + "; charset=utf-8",
                               static[path[8:]])
                else:
                    self._send(404, "text/plain; charset=utf-8",
                               f"{path}: no such page (the list is at /)\n".encode())

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(str(tls[0]), str(tls[1]))
            except (OSError, ssl.SSLError) as exc:
                self.server.server_close()
                raise WalletError(f"TLS certificate {tls[0]} / key {tls[1]}: {exc}") from None
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="wallet")
        self._thread.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()

    def __enter__(self) -> WalletServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
