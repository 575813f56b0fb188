"""The bridge configuration that docs/mesh.md gives ("Per-stand brokers bridged to a venue
core") is loaded by a real Mosquitto as written, only the core's address, the CA file and
the password filled in for loopback: the stand's broker starts with it, the bridge logs in
to a TLS core with the documented user, and a mesh message crosses it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from portique.devtools.broker import LoopbackBroker, free_port
from tests.mesh.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bridge-s3cret"


def documented_bridge() -> list[str]:
    text = (ROOT / "docs" / "mesh.md").read_text(encoding="utf-8")
    start = text.index("The bridge, in the stand broker's `mosquitto.conf`")
    match = re.search(r"```\n(connection .*?)```", text[start:], re.S)
    assert match is not None, "docs/mesh.md: the bridge's configuration block is missing"
    return match.group(1).splitlines()


def test_the_documented_bridge_has_comments_only_on_their_own_lines() -> None:
    # mosquitto.conf has no comments after a value: the value would swallow them
    for line in documented_bridge():
        assert line.startswith("#") or "#" not in line.replace("portique/v1/#", ""), line


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and the core's certificate for 127.0.0.1, as a venue's CA would issue."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "venue TEST CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("127.0.0.1")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "core-cert.pem", folder / "core-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_mosquitto_loads_the_documented_bridge_and_it_carries_mesh_messages(
        tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    ca, cert, key = _tls_files(tls)
    tls_port = free_port()
    core = LoopbackBroker(tmp_path / "core", users={"stand-north": PASSWORD, "ops": "ops"},
                          name="core")
    with core.conf.open("a", encoding="utf-8") as conf:  # the core's TLS listener
        conf.write(f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\n"
                   f"keyfile {key}\n")
    stand = LoopbackBroker(tmp_path / "stand", name="stand-north")
    filled = [line.replace("core.venue.lan:8883", f"127.0.0.1:{tls_port}")
              .replace("/etc/mosquitto/venue-ca.pem", str(ca))
              .replace("<password>", PASSWORD) for line in documented_bridge()]
    with stand.conf.open("a", encoding="utf-8") as conf:
        conf.write("\n".join(filled) + "\n")

    got: list[bytes] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ops-watch")
    client.username_pw_set("ops", "ops")
    client.on_connect = lambda c, *_: c.subscribe("portique/v1/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    with core, stand:
        wait_for(lambda: "portique-bridge-stand-north-core" in core.log.read_text(
            errors="replace"), "the stand's bridge logs in at the core")
        assert "stand-north" in core.log.read_text(errors="replace")
        client.connect("127.0.0.1", core.port)
        client.loop_start()
        try:
            wait_for(subscribed.is_set, "subscribed at the core")
            sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="stand-gate")
            sender.connect("127.0.0.1", stand.port)
            sender.loop_start()
            try:
                def sent() -> bool:
                    sender.publish("portique/v1/test/bridge", b"crossed", qos=1)
                    return wait_until_got(got)
                wait_for(sent, "a message published at the stand reaches the core")
            finally:
                sender.loop_stop()
                sender.disconnect()
        finally:
            client.loop_stop()
            client.disconnect()
        assert stand.running and core.running
    assert b"crossed" in got


def wait_until_got(got: list[bytes]) -> bool:
    try:
        wait_for(lambda: b"crossed" in got, "the message at the core", timeout=1.0)
    except AssertionError:
        return False
    return True
