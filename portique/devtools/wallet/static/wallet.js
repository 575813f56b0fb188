// The rehearsal wallet: the phone side of docs/credential.md, in the browser.
//
// Level 1 (signed by the issuer) comes with the page; level 2 is signed here, every step,
// with the test ticket's device key through WebCrypto's Ed25519:
//   code = "PQ1:" + Base45(level1 || step (4 bytes, big-endian) || signature)
//   signature = Ed25519(device key, "portique/credential/v1/device\0" || level1 || step)
// A test ticket's device key is handed to the page on purpose: it is a rehearsal key,
// minted with the ticket by `gate wallet mint`, never a real holder's.
"use strict";

const STEP_SECONDS = 15;
const PREFIX = "PQ1:";
const DEVICE_CONTEXT = new TextEncoder().encode("portique/credential/v1/device\0");
const BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

function fromBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function stepBytes(step) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, step, false);
  return out;
}

// RFC 9285: each pair of bytes n = a*256+b as three characters, least significant first;
// a last single byte as two.
function base45(data) {
  let out = "";
  for (let i = 0; i + 1 < data.length; i += 2) {
    const n = data[i] * 256 + data[i + 1];
    out += BASE45[n % 45] + BASE45[Math.floor(n / 45) % 45] + BASE45[Math.floor(n / 2025)];
  }
  if (data.length % 2) {
    const n = data[data.length - 1];
    out += BASE45[n % 45] + BASE45[Math.floor(n / 45)];
  }
  return out;
}

function stepAt(unixSeconds) {
  return Math.floor(unixSeconds / STEP_SECONDS);
}

async function loadKey(pkcs8Base64) {
  return crypto.subtle.importKey("pkcs8", fromBase64(pkcs8Base64), { name: "Ed25519" },
                                 false, ["sign"]);
}

async function codeForStep(level1, key, step) {
  const message = concat(DEVICE_CONTEXT, level1, stepBytes(step));
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, message));
  return PREFIX + base45(concat(level1, stepBytes(step), signature));
}

function drawCode(canvas, text) {
  const qr = qrcode(0, "M");
  qr.addData(text, "Alphanumeric");
  qr.make();
  const modules = qr.getModuleCount();
  const quiet = 4;
  const side = Math.min(canvas.parentElement.clientWidth, 560);
  const px = Math.max(2, Math.floor(side / (modules + 2 * quiet)));
  const size = px * (modules + 2 * quiet);
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext("2d");
  g.fillStyle = "#ffffff";
  g.fillRect(0, 0, size, size);
  g.fillStyle = "#000000";
  for (let r = 0; r < modules; r++) {
    for (let c = 0; c < modules; c++) {
      if (qr.isDark(r, c)) g.fillRect((c + quiet) * px, (r + quiet) * px, px, px);
    }
  }
  return modules;
}

function pad(n) { return String(n).padStart(2, "0"); }

function clock(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

async function main() {
  const wallet = JSON.parse(document.getElementById("wallet-data").textContent);
  const level1 = fromBase64(wallet.level1);
  const status = document.getElementById("status");
  const codeText = document.getElementById("code");
  const canvas = document.getElementById("qr");
  const bar = document.getElementById("bar");
  if (!window.crypto || !crypto.subtle) {
    status.textContent = "This browser gives no WebCrypto here: open the page over HTTPS " +
      "(gate wallet serve --self-signed) or on this machine. / Pas de WebCrypto ici : " +
      "ouvrir la page en HTTPS.";
    document.body.dataset.state = "error";
    return;
  }
  let key;
  try {
    key = await loadKey(wallet.device_key_pkcs8);
  } catch (err) {
    status.textContent = `This browser cannot sign with Ed25519 (${err.name}): a recent ` +
      "Chrome, Safari or Firefox is needed. / Navigateur sans Ed25519.";
    document.body.dataset.state = "error";
    return;
  }
  const frozen = new URLSearchParams(location.search).get("at");
  const now = () => (frozen !== null ? Number(frozen) : Date.now() / 1000);
  window.portiqueCodeAt = async (at) => codeForStep(level1, key, stepAt(at));
  let shown = null;
  async function tick() {
    const at = now();
    const step = stepAt(at);
    if (step !== shown) {
      const text = await codeForStep(level1, key, step);
      drawCode(canvas, text);
      codeText.textContent = text;
      document.body.dataset.step = String(step);
      shown = step;
    }
    const left = STEP_SECONDS - (at - step * STEP_SECONDS);
    bar.style.width = `${(100 * left) / STEP_SECONDS}%`;
    status.textContent = frozen !== null
      ? `frozen at ${clock(at)} (step ${step}) / figé`
      : `phone clock ${clock(at)}, next code in ${Math.ceil(left)} s / prochain code`;
    document.body.dataset.state = "shown";
  }
  await tick();
  window.addEventListener("resize", () => { shown = null; tick(); });
  if (frozen === null) setInterval(tick, 250);
}

main();
