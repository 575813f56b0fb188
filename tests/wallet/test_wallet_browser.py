"""The rehearsal wallet in a real headless Chromium: the page's code at a given time is byte
for byte `gate ticket code --at` for the same ticket and key (signed in the browser with
WebCrypto's Ed25519), and the gate's own decoder reads the QR from a screenshot of the
page, which `gate check` then admits."""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from portique.devtools.wallet import WalletError, WalletServer, load_wallets
from portique.scanner.decoders import ZxingDecoder

ROOT = Path(__file__).resolve().parents[2]
EVENT = "REHEARSAL-1"
AT = 1764612000  # 2025-12-01T18:00:00Z, inside the tickets' window
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--virtual-time-budget=10000"]


def gate(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "portique", *args], capture_output=True,
                          text=True, env=env, check=check, timeout=120)


def chromium(*args: str) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: the wallet's browser test needs it; `make test` "
                    "installs it (Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="portique-chromium-") as profile:
        done = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass
class Batch:
    folder: Path
    keys: Path
    server: WalletServer

    def page(self, ticket: str, at: int) -> str:
        return f"{self.server.url}t/{ticket}?at={at}"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("wallet")
    keys = root / "keys"
    gate("keys", "new", "--kid", "iss-1", "--out", str(keys))
    gate("keys", "new", "--kid", "feed-1", "--role", "feed", "--out", str(keys))
    out = gate("wallet", "mint", "--issuer-key", str(keys / "iss-1.key"), "--feed-key",
               str(keys / "feed-1.key"), "--event", EVENT, "--count", "3",
               "--valid-from", "2025-12-01T12:00:00Z", "--valid-until", "2025-12-02T02:00:00Z",
               "--entrances", "1,2", "--out", str(root / "batch"), "--json")
    assert json.loads(out.stdout)["tickets"] == ["TEST-001", "TEST-002", "TEST-003"]
    with WalletServer(root / "batch") as server:
        yield Batch(root / "batch", keys, server)


def shown_code(dom: str) -> str:
    assert 'data-state="shown"' in dom, f"the page never showed a code: {dom[-1500:]}"
    match = re.search(r'<div id="code">([^<]*)</div>', dom)
    assert match is not None
    return html.unescape(match.group(1))


@pytest.mark.slow  # a real browser per case: slow on 2 shared cores
@pytest.mark.parametrize(("ticket", "at"), [("TEST-001", AT), ("TEST-001", AT + 15),
                                            ("TEST-003", AT + 7 * 3600 + 4)])
def test_the_page_code_is_byte_for_byte_gate_ticket_code(batch: Batch, ticket: str,
                                                         at: int) -> None:
    dom = chromium("--dump-dom", batch.page(ticket, at))
    expected = gate("ticket", "code", str(batch.folder / "tickets" / f"{ticket}.json"),
                    "--device-key", str(batch.folder / "devices" / f"{ticket}.key"),
                    "--at", str(at)).stdout.strip()
    assert shown_code(dom) == expected
    # and the page can never be mistaken for a real ticket
    assert dom.count("TEST · NOT A TICKET · BILLET DE TEST") == 2
    assert f"step {at // 15}" in dom


@pytest.mark.slow
def test_the_gate_reads_a_screenshot_of_the_page_and_admits_it(batch: Batch,
                                                              tmp_path: Path) -> None:
    shot = tmp_path / "phone.png"
    chromium("--window-size=540,1100", f"--screenshot={shot}", batch.page("TEST-002", AT))
    image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    codes = ZxingDecoder().decode(image)
    assert len(codes) == 1 and codes[0].startswith("PQ1:")
    # the same through the gate's command line, then the decision, 3 s after the shot
    decoded = gate("decode", str(shot), "--json").stdout
    assert codes[0] in decoded
    check = gate("check", codes[0], "--keys", str(batch.keys), "--event", EVENT,
                 "--entrance", "1", "--at", str(AT + 3), "--json", check=False)
    verdict = json.loads(check.stdout)
    assert (check.returncode, verdict["verdict"], verdict["reason"]) == (0, "admit", "VALID")
    # a minute later the same picture is a screenshot, refused as stale
    late = gate("check", codes[0], "--keys", str(batch.keys), "--event", EVENT,
                "--entrance", "1", "--at", str(AT + 60), "--json", check=False)
    assert json.loads(late.stdout)["reason"] == "STALE_CODE"


def test_mint_writes_the_sessions_feed_and_refuses_to_mint_over_a_batch(batch: Batch) -> None:
    feed = batch.folder / "feed" / EVENT
    index = json.loads((feed / "index.json").read_text(encoding="utf-8"))
    assert index["event"] == EVENT and index["sequence"] == 1
    text = gzip.decompress((feed / index["snapshot"]["file"]).read_bytes())
    for ticket in ("TEST-001", "TEST-002", "TEST-003"):
        assert ticket.encode() in text
    wallets = load_wallets(batch.folder)
    assert sorted(wallets) == ["TEST-001", "TEST-002", "TEST-003"]
    assert all(w["test"] is True and w["category"] == "TEST" for w in wallets.values())
    again = gate("wallet", "mint", "--issuer-key", str(batch.keys / "iss-1.key"),
                 "--feed-key", str(batch.keys / "feed-1.key"), "--event", EVENT,
                 "--count", "2", "--valid-from", "2025-12-01T12:00:00Z",
                 "--valid-until", "2025-12-02T02:00:00Z", "--entrances", "1",
                 "--out", str(batch.folder), check=False)
    assert again.returncode == 2 and "already holds a batch" in again.stderr
    assert sorted(load_wallets(batch.folder)) == sorted(wallets)  # nothing replaced


def test_serve_refuses_a_folder_without_wallets(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="no wallet files"):
        WalletServer(tmp_path)


@pytest.mark.slow
def test_the_page_reproduces_the_credential_vector(tmp_path: Path) -> None:
    """The page as the phone side of docs/credential.md: from the vector's level 1 and
    device seed alone, at the vector's time, it shows the vector's exact code."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from portique.devtools.wallet import wallet_document

    vectors = json.loads((ROOT / "tests" / "vectors" / "credential.json")
                         .read_text(encoding="utf-8"))
    vector = next(v for v in vectors["vectors"] if v["name"] == "valid-phone")
    seed = vectors["keys"][vector["signed_by"]["device"]]["seed_hex"]
    device = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    folder = tmp_path / "wallet"
    folder.mkdir()
    doc = wallet_document(bytes.fromhex(vector["level1_hex"]), device)
    (folder / "vector.json").write_text(json.dumps(doc), encoding="utf-8")
    with WalletServer(tmp_path) as server:
        dom = chromium("--dump-dom",
                       f"{server.url}t/{doc['ticket_id']}?at={vector['now']}")
    assert shown_code(dom) == vector["code"]
    assert f"step {vector['step']}" in dom


def test_self_signed_is_p256_and_reused_across_starts(batch: Batch, tmp_path: Path) -> None:
    """Browsers refuse an Ed25519 server certificate; a phone accepts a self-signed one
    once, so a second start keeps the same certificate and key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from portique.devtools.wallet import self_signed

    folder = tmp_path / "tls"
    cert_path, key_path = self_signed(folder, ["127.0.0.1", "wallet.test"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    first = (cert_path.read_bytes(), key_path.read_bytes())
    with WalletServer(batch.folder, tls=(cert_path, key_path)) as server:
        assert server.url.startswith("https://")
    again = self_signed(folder, ["127.0.0.1", "wallet.test"])
    assert again == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == first
    # a host the certificate does not name gets a new one
    self_signed(folder, ["127.0.0.1", "other.test"])
    assert cert_path.read_bytes() != first[0]


@pytest.mark.slow
def test_the_page_loads_over_https_with_the_self_signed_certificate(batch: Batch,
                                                                    tmp_path: Path) -> None:
    """What a phone on the test network does: `gate wallet serve --self-signed`, the
    certificate accepted once (here --ignore-certificate-errors), the page shows the code."""
    from portique.devtools.wallet import self_signed

    tls = self_signed(tmp_path / "tls", ["127.0.0.1"])
    with WalletServer(batch.folder, tls=tls) as server:
        assert server.url.startswith("https://")
        dom = chromium("--ignore-certificate-errors", "--dump-dom",
                       f"{server.url}t/TEST-001?at={AT}")
    expected = gate("ticket", "code", str(batch.folder / "tickets" / "TEST-001.json"),
                    "--device-key", str(batch.folder / "devices" / "TEST-001.key"),
                    "--at", str(AT)).stdout.strip()
    assert shown_code(dom) == expected
