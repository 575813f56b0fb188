#!/bin/sh
# Run inside a fresh Debian Bookworm root where portique_<version>_<arch>.deb was just
# installed (packaging/check/root-check.sh copies this script and /check there). Every step
# uses the installed package: /usr/bin/gate and /opt/portique/.venv, built by the postinst
# from the package's own wheelhouse. Prints one "ok"/"SKIP" line per step; exits non-zero
# at the first failure.
#
#   in-root.sh ARCH        (as root, in the chroot, with /check holding tests/ and pytest.ini)
set -eu

ARCH=${1:?usage: in-root.sh ARCH}
CHECK=/check
OUT=$CHECK/out
PY=/opt/portique/.venv/bin/python
CLIPS=$CHECK/tests/fixtures/clips
mkdir -p "$OUT"
: > "$OUT/passed.txt"
cd "$CHECK"
step() { echo "== $*"; }
ok() { echo "ok   $*"; echo "$*" >> "$OUT/passed.txt"; }
fail() { echo "FAIL $*" >&2; exit 1; }
# as the service's user, as `sudo -u portique` would (util-linux is in every root)
as_gate() { setpriv --reuid portique --regid portique --init-groups -- "$@"; }

step "the installed gate runs natively for $ARCH"
machine=$($PY -c 'import platform; print(platform.machine())')
case "$ARCH:$machine" in
  amd64:x86_64|arm64:aarch64) ok "python $($PY -c 'import sys; print(sys.version.split()[0])') on $machine" ;;
  *) fail "expected $ARCH, the venv's python runs on $machine" ;;
esac
$PY - <<'EOF' || fail "the native libraries do not load"
from importlib.metadata import version
import PIL.Image, cv2, numpy, zxingcpp, pyzbar.pyzbar
import cryptography.hazmat.primitives.asymmetric.ed25519
print(f"ok   numpy {numpy.__version__}, opencv {cv2.__version__}, zxing-cpp "
      f"{version('zxing-cpp')}, pillow {PIL.__version__}, zbar loaded")
EOF
gate --help > /dev/null || fail "gate --help"
[ "$(command -v gate)" = /usr/bin/gate ] || fail "gate is not /usr/bin/gate on the PATH"
getent passwd portique >/dev/null || fail "no portique user (sysusers)"
[ -d /etc/portique/keys ] && [ -d /var/lib/portique ] || fail "tmpfiles folders missing"
[ "$(stat -c %U:%a /var/lib/portique)" = portique:700 ] || fail "/var/lib/portique not portique 0700"
ok "gate on the PATH, user portique, /etc/portique/keys, /var/lib/portique portique 0700"

step "credential, feed, entry-rule and journal test vectors (tests/vectors)"
$PY -m pytest -q -p no:cacheprovider -c "$CHECK/pytest.ini" --rootdir "$CHECK" \
  tests/core/test_vectors.py tests/core/test_rules_vectors.py tests/core/test_journal_vectors.py \
  tests/revocation/test_vectors.py > "$OUT/vectors.txt" 2>&1 \
  || { cat "$OUT/vectors.txt"; fail "vectors"; }
ok "$(tail -n 1 "$OUT/vectors.txt")"

step "gate decode ${DECODE_FLAGS:-} on the committed clips"
# shellcheck disable=SC2086  # the flags are words
gate decode --json ${DECODE_FLAGS:-} "$CLIPS"/* > "$OUT/decode.jsonl" || fail "gate decode"
ok "$(grep -c '"codes": \["' "$OUT/decode.jsonl") frames with a code, of $(wc -l < "$OUT/decode.jsonl") (compared with the build machine's outside)"

step "gate setup, gate sync, gate config check (as portique)"
install -d -m 0700 /root/issuer
gate keys new --kid feed-1 --role feed --out /root/issuer >/dev/null
# A feed published and served on loopback, as the platform would: the seller's copy in the
# revoked clip is void.
install -d /root/feed
printf 'ticket_id,min_generation\nPAR24-000106,1\n' > /root/revocations.csv
printf 'ticket_id,generation,order_ref,holder_name,category,entrances,flags\n' > /root/manifest.csv
gate feed publish --event PAR24-ATH05 --revocations /root/revocations.csv \
  --manifest /root/manifest.csv --key /root/issuer/feed-1.key --out /root/feed >/dev/null
gate feed serve --port 0 /root/feed > "$OUT/serve.txt" 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
tries=0
until grep -q '^serving' "$OUT/serve.txt"; do
  tries=$((tries + 1)); [ $tries -lt 600 ] || fail "feed server did not start"; sleep 0.1
done
URL=$(sed -n 's/^serving .* on \(http:[^ ]*\)\/ .*/\1/p' "$OUT/serve.txt")
gate setup --gate-id north-3 --event PAR24-ATH05 --entrance 2 --feed-url "$URL" \
  --key "$CLIPS/../keys/fixture-issuer.pub" /root/issuer/feed-1.pub --pin-factory mock \
  > "$OUT/setup.txt" || { cat "$OUT/setup.txt"; fail "gate setup"; }
grep -q '^wrote /etc/portique/gate.toml' "$OUT/setup.txt" || fail "gate setup wrote no config"
if gate setup --gate-id north-3 --event PAR24-ATH05 --entrance 2 --feed-url "$URL" \
    > "$OUT/setup-again.txt" 2>&1; then fail "gate setup replaced an existing config"; fi
grep -q 'already exists; not overwritten' "$OUT/setup-again.txt" || fail "second setup: $(cat "$OUT/setup-again.txt")"
# A new gate syncs once before its config checks: `gate run` needs the event's feed.
as_gate gate sync --config /etc/portique/gate.toml > "$OUT/sync.txt" 2>&1 \
  || { cat "$OUT/sync.txt"; fail "gate sync"; }
ok "$(tail -n 1 "$OUT/sync.txt")"
as_gate gate config check /etc/portique/gate.toml > "$OUT/config-check.txt" \
  || { cat "$OUT/config-check.txt"; fail "gate config check"; }
ok "$(cat "$OUT/config-check.txt")"

step "systemd-analyze verify on the installed units"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/gate.service /lib/systemd/system/gate-sync.service \
    /lib/systemd/system/gate-sync.timer > "$OUT/verify.txt" 2>&1 \
    || { cat "$OUT/verify.txt"; fail "systemd-analyze verify"; }
  if [ -s "$OUT/verify.txt" ]; then cat "$OUT/verify.txt"; fail "systemd-analyze verify said something"; fi
  ok "gate.service, gate-sync.service, gate-sync.timer"
else
  fail "systemd-analyze missing (the package depends on systemd)"
fi

step "a replayed gate run with simulated pins (as portique)"
[ "$(stat -c %U:%a /run/portique)" = portique:750 ] || fail "/run/portique not portique 0750 (tmpfiles)"
for clip in valid_step_change revoked; do
  as_gate gate run --config /etc/portique/gate.toml --replay "$CLIPS/$clip" --fast \
    --simulate-passage 0.2 --print --log-level WARNING > "$OUT/run-$clip.txt" 2>&1 \
    || { cat "$OUT/run-$clip.txt"; fail "gate run --replay $clip"; }
done
grep -q 'VALID' "$OUT/run-valid_step_change.txt" || { cat "$OUT/run-valid_step_change.txt"; fail "valid clip not admitted"; }
grep -q 'SUPERSEDED' "$OUT/run-revoked.txt" || { cat "$OUT/run-revoked.txt"; fail "resold ticket not refused"; }
ok "valid_step_change admitted (VALID), revoked refused (SUPERSEDED)"

step "gate ready, asked of a gate replaying a clip at its recorded pace (41 s)"
as_gate gate run --config /etc/portique/gate.toml --replay "$CLIPS/second_scan" \
  --simulate-passage 0.2 --print --log-level WARNING > "$OUT/run-second_scan.txt" 2>&1 &
GATE=$!
trap 'kill $SERVER $GATE 2>/dev/null || true' EXIT
# Until the running gate answers on its control socket (never past the clip's end).
tries=0
until [ -S /run/portique/control.sock ] && as_gate gate ready --json > "$OUT/ready.json" 2>&1; \
    grep -q '"source": "gate"' "$OUT/ready.json" 2>/dev/null; do
  kill -0 $GATE 2>/dev/null || { cat "$OUT/run-second_scan.txt"; fail "the gate ended before answering"; }
  tries=$((tries + 1)); [ $tries -lt 1200 ] || fail "the replaying gate never answered"; sleep 0.1
done
set +e
as_gate gate ready > "$OUT/ready.txt" 2>&1
rc=$?
set -e
sed 's/^/     /' "$OUT/ready.txt"
if grep -q 'not running' "$OUT/ready.txt"; then fail "gate ready did not reach the replaying gate"; fi
[ $rc = 0 ] || fail "gate ready: exit $rc"
wait $GATE || { cat "$OUT/run-second_scan.txt"; fail "gate run --replay second_scan"; }
# At recorded pace a slow machine drops frames, as with a real camera (under qemu a whole
# sighting may go by unseen): the decisions themselves are checked on the --fast runs
# above, which see every frame; here only that the gate ran the clip to its end.
grep -q '^frames [0-9]*, decisions' "$OUT/run-second_scan.txt" \
  || { cat "$OUT/run-second_scan.txt"; fail "the replaying gate gave no summary"; }
ok "gate ready: READY (exit 0) from the running gate; the replay ran to its end ($(grep -o '^frames [0-9]*' "$OUT/run-second_scan.txt") of 26)"
step "dpkg -r, then dpkg -P: the app goes, the operator's files stay"
echo "secret" > /etc/portique/credentials/upload-token
dpkg -r portique > "$OUT/remove.txt" 2>&1 || { cat "$OUT/remove.txt"; fail "dpkg -r"; }
[ ! -e /opt/portique/.venv ] && [ ! -e /usr/bin/gate ] || fail "dpkg -r left the app"
[ -e /etc/portique/gate.toml.example ] || fail "dpkg -r removed the conffile"
dpkg -P portique > "$OUT/purge.txt" 2>&1 || { cat "$OUT/purge.txt"; fail "dpkg -P"; }
[ ! -e /etc/portique/gate.toml.example ] || fail "dpkg -P left the example conffile"
[ ! -e /opt/portique ] || fail "dpkg -P left /opt/portique"
for kept in /etc/portique/gate.toml /etc/portique/keys/fixture-issuer.pub \
    /etc/portique/credentials/upload-token /etc/portique/supervisors.toml \
    /var/lib/portique/journal.sqlite; do
  [ -e "$kept" ] || fail "dpkg -r/-P removed the operator's $kept"
done
[ "$(cat /etc/portique/credentials/upload-token)" = secret ] || fail "the upload token changed"
getent passwd portique >/dev/null || fail "the portique user went"
ok "removed and purged: config, keys, token, supervisors and journal kept; $(grep -o 'kept:.*' "$OUT/purge.txt" | cut -c1-60)"

echo "all checks passed on $ARCH"
