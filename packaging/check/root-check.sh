#!/bin/sh
# Install portique_<version>_<arch>.deb into a fresh Debian Bookworm root and check it there
# (packaging/check/in-root.sh): `make check-arm64`, and the amd64 package test.
#
#   root-check.sh ARCH DEB
#
# The root is made once with mmdebstrap (for arm64 run through qemu-user-static and
# binfmt_misc: no cross toolchain) and cached in $PORTIQUE_ROOTS (default
# /var/cache/portique-roots/bookworm-ARCH); each check works on a fresh copy of it, so
# that nothing a check installed or wrote is seen by the next. The cached root holds the
# package's Depends (taken from the .deb) and pytest from Debian for the test vectors;
# every Python package of the gate itself comes from the .deb's wheelhouse.
set -eu

ARCH=${1:?usage: root-check.sh ARCH DEB}
DEB=${2:?usage: root-check.sh ARCH DEB}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROOTS=${PORTIQUE_ROOTS:-/var/cache/portique-roots}
MIRROR=${PORTIQUE_MIRROR:-http://deb.debian.org/debian}
HOST_GATE=${HOST_GATE:-$REPO/.venv/bin/gate}
case "$HOST_GATE" in /*) ;; *) HOST_GATE="$PWD/$HOST_GATE" ;; esac
[ -f "$DEB" ] || { echo "root-check.sh: $DEB: no such package" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "root-check.sh: needs root (mmdebstrap, chroot)" >&2; exit 2; }
START=$(date +%s)
elapsed() { echo "$(( $(date +%s) - START )) s"; }

case "$(dpkg --print-architecture):$ARCH" in
  amd64:amd64|arm64:arm64) FOREIGN="" ;;
  *:arm64)
    FOREIGN=yes
    [ -d /proc/sys/fs/binfmt_misc ] && [ -e /proc/sys/fs/binfmt_misc/register ] \
      || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
      echo "root-check.sh: qemu-aarch64 is registered without the F flag: a chroot" \
           "cannot reach the interpreter" >&2; exit 2; }
    ;;
  *) echo "root-check.sh: cannot check $ARCH on $(dpkg --print-architecture)" >&2; exit 2 ;;
esac

# The cached root: its name says what it holds, so that a changed Depends makes a new one.
# python3-distutils: the first of an alternative in python3.11-venv's dependency, named so
# that the root holds the same whichever resolver made it.
DEPENDS=$(dpkg-deb -f "$DEB" Depends | sed 's/([^)]*)//g; s/[|,]/ /g')
PACKAGES=$(echo "$DEPENDS python3-distutils python3-pytest" | tr -s ' ' '\n' | sort -u \
  | tr '\n' ' ' | sed 's/ $//')
KEY=$(echo "$PACKAGES" | md5sum | cut -c1-8)
BASE="$ROOTS/bookworm-$ARCH-$KEY"
LOG="$ROOTS/mmdebstrap-$ARCH.log"
in_root() { r=$1; shift; chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }
if [ ! -f "$BASE/.portique-root-ok" ]; then
  echo "== mmdebstrap bookworm $ARCH into $BASE (cold; cached afterwards; log $LOG)"
  TMP="$BASE.tmp"
  rm -rf --one-file-system "$TMP"
  mkdir -p "$ROOTS"
  # mmdebstrap rather than debootstrap: apt (the build machine's) downloads and resolves,
  # the root's own dpkg (through qemu for arm64) then runs once over the essential packages
  # and once over the rest, where debootstrap's second stage runs it package group by
  # package group and reconfigures; under emulation every dpkg run and every maintainer
  # script costs seconds. The root holds the Essential packages, apt (for a Depends that
  # the cached root would lack) and $PACKAGES, without recommends. Manual pages,
  # documentation and translations are not unpacked (nothing here reads them), and a
  # throw-away check root needs no fsync. Only force-unsafe-io stays in the root's dpkg
  # configuration: the package under check is installed with every one of its files.
  { mmdebstrap --mode=root --arch="$ARCH" --variant=apt \
      --include="$(echo "$PACKAGES" | tr ' ' ',')" \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='Apt::Install-Recommends "false"' \
      --dpkgopt=force-unsafe-io \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$TMP" "$MIRROR" &&
    rm -f "$TMP/etc/dpkg/dpkg.cfg.d/99mmdebstrap" &&
    echo force-unsafe-io > "$TMP/etc/dpkg/dpkg.cfg.d/portique-check-root"
  } > "$LOG" 2>&1 || {
    tail -n 30 "$LOG" >&2
    echo "root-check.sh: making the $ARCH root failed (log: $LOG)" >&2; exit 1; }
  # shellcheck disable=SC2086
  missing=$(in_root "$TMP" dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $PACKAGES 2>&1 \
    | grep -v '^ii ' || true)
  [ -z "$missing" ] || { echo "root-check.sh: not installed in the root: $missing" >&2; exit 1; }
  rm -f "$TMP/var/cache/apt/archives/"*.deb
  touch "$TMP/.portique-root-ok"
  mv "$TMP" "$BASE"
  echo "   root ready after $(elapsed): $PACKAGES"
else
  echo "== cached root $BASE"
fi

RUN="$ROOTS/run-$ARCH"
cleanup() {
  if mountpoint -q "$RUN/proc" 2>/dev/null; then umount "$RUN/proc" || umount -l "$RUN/proc"; fi
  if mountpoint -q "$RUN/proc" 2>/dev/null; then
    echo "root-check.sh: $RUN/proc still mounted: $RUN left in place" >&2; return 1
  fi
  rm -rf --one-file-system "$RUN"
}
cleanup
trap cleanup EXIT INT TERM
cp -a "$BASE" "$RUN"
# /proc only: mmdebstrap made the root's own /dev nodes (null, zero, urandom, tty...).
mount -t proc proc "$RUN/proc"
cp /etc/resolv.conf "$RUN/etc/resolv.conf" 2>/dev/null || true

echo "== dpkg -i $(basename "$DEB") (the postinst builds /opt/portique/.venv offline)"
cp "$DEB" "$RUN/tmp/portique.deb"
T0=$(date +%s)
if ! in_root "$RUN" dpkg -i /tmp/portique.deb > "$RUN/tmp/dpkg.log" 2>&1; then
  # Depends missing from the cached root: from Debian's mirror (never Python wheels).
  in_root "$RUN" sh -c 'apt-get update -q && apt-get -f install -y -q --no-install-recommends' \
    >> "$RUN/tmp/dpkg.log" 2>&1 || { cat "$RUN/tmp/dpkg.log" >&2; exit 1; }
fi
sed 's/^/   /' "$RUN/tmp/dpkg.log"
echo "   installed in $(( $(date +%s) - T0 )) s: $(in_root "$RUN" dpkg-query -W -f='${Package} ${Version} ${Architecture}' portique)"

# What the checks read: the test vectors, the recorded clips, the fixture issuer key.
mkdir -p "$RUN/check/tests/core" "$RUN/check/tests/revocation" "$RUN/check/tests/fixtures"
cp "$REPO/tests/__init__.py" "$RUN/check/tests/"
cp "$REPO/tests/core/__init__.py" "$REPO/tests/core/test_vectors.py" \
  "$REPO/tests/core/test_rules_vectors.py" "$REPO/tests/core/test_journal_vectors.py" \
  "$RUN/check/tests/core/"
cp "$REPO/tests/revocation/__init__.py" "$REPO/tests/revocation/test_vectors.py" \
  "$RUN/check/tests/revocation/"
cp -a "$REPO/tests/vectors" "$RUN/check/tests/"
cp -a "$REPO/tests/fixtures/clips" "$RUN/check/tests/fixtures/"
mkdir -p "$RUN/check/tests/fixtures/keys"
cp "$REPO/tests/fixtures/keys/fixture-issuer.pub" "$RUN/check/tests/fixtures/keys/"
chmod -R go-w "$RUN/check"
chmod -R a+rX "$RUN/check"
printf '[pytest]\naddopts = -ra\nmarkers =\n    slow: long-running suites\n' > "$RUN/check/pytest.ini"
cp "$HERE/in-root.sh" "$RUN/check/in-root.sh"

# Under emulation (another architecture than the build machine's) the pipeline's own module
# sampler is left out of the decode check: qemu runs its vector code 50-100 times slower
# (cv2.matchTemplate on a 480-pixel square: 139 ms against 5 ms natively, cv2.gemm 118
# ms against 1.2 ms), 10-44 s a frame where it runs; its reads are the hard set's, checked
# natively by tests/scanner.
DECODE_FLAGS=""
[ "$ARCH" = "$(dpkg --print-architecture)" ] || DECODE_FLAGS="--no-sampler"

echo "== checks inside the $ARCH root"
T0=$(date +%s)
in_root "$RUN" HOME=/root TZ=UTC DECODE_FLAGS="$DECODE_FLAGS" sh /check/in-root.sh "$ARCH"
echo "   checks took $(( $(date +%s) - T0 )) s"

# The same clips decoded by the build machine's gate: the same codes on every frame.
if [ -x "$HOST_GATE" ]; then
  # shellcheck disable=SC2086  # the flags are words
  (cd "$RUN/check" && "$HOST_GATE" decode --json $DECODE_FLAGS tests/fixtures/clips/*) \
    > "$RUN/check/out/decode-host.jsonl"
  python3 - "$RUN/check/out/decode.jsonl" "$RUN/check/out/decode-host.jsonl" "$ARCH" <<'EOF'
import json, sys
def codes(path):
    rows = [json.loads(line) for line in open(path)]
    return [(r["source"].rsplit("/", 1)[-1], r["frame"], r["codes"]) for r in rows]
inside, host = codes(sys.argv[1]), codes(sys.argv[2])
if inside != host:
    diff = [(a, b) for a, b in zip(inside, host) if a != b][:5]
    sys.exit(f"FAIL gate decode on {sys.argv[3]} differs from the build machine: {diff}")
print(f"ok   gate decode on {sys.argv[3]}: the same codes as the build machine on all "
      f"{len(inside)} frames")
EOF
  echo "decode compared" >> "$RUN/check/out/passed.txt"
else
  echo "SKIP decode comparison: no $HOST_GATE on the build machine"
fi
echo "== $ARCH package checked in $(elapsed)"
echo "$ARCH: $(wc -l < "$RUN/check/out/passed.txt") passed, 0 failed"
