#!/bin/sh
# Build portique_<version>_<arch>.deb for a Debian Bookworm gate (Python 3.11), on any
# machine with dpkg-deb and pip: no cross toolchain, nothing is compiled.
#
#   packaging/deb/build.sh amd64|arm64 [OUT_DIR]      (make deb ARCH=...)
#
# The package carries an offline wheelhouse: the project's own wheel and the exact wheels of
# requirements.lock for the target's platform (binary wheels only, for CPython 3.11 on
# glibc <= 2.36, Bookworm's). Its postinst builds /opt/portique/.venv from that folder with
# `pip install --no-index`, so a gate without internet installs it. docs/operations.md,
# "The Debian package", says why a wheelhouse rather than a prebuilt venv.
set -eu

ARCH=${1:?usage: build.sh amd64|arm64 [OUT_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${2:-$REPO/dist}
PYTHON=${PYTHON:-python3}
case "$ARCH" in
  amd64) MACHINE=x86_64 ;;
  arm64) MACHINE=aarch64 ;;
  *) echo "build.sh: ARCH must be amd64 or arm64, got '$ARCH'" >&2; exit 2 ;;
esac
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n1)
[ -n "$VERSION" ] || { echo "build.sh: no version in pyproject.toml" >&2; exit 2; }
DEB="$OUT/portique_${VERSION}_${ARCH}.deb"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portique-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"
WHEELS="$ROOT/opt/portique/wheels"
mkdir -p "$WHEELS" "$OUT"

# Every dependency of pyproject.toml must be pinned in requirements.lock.
"$PYTHON" - "$REPO/pyproject.toml" "$HERE/requirements.lock" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
pinned = {line.split("==")[0] for line in open(sys.argv[2])
          if line.strip() and not line.startswith("#")}
missing = [d for d in deps
           if re.split(r"[<>=!~ \[;]", d)[0].lower().replace("_", "-") not in pinned]
if missing:
    sys.exit(f"build.sh: requirements.lock does not pin {', '.join(missing)}")
EOF

echo "== wheels for $ARCH (CPython 3.11, manylinux, glibc <= 2.36)"
"$PYTHON" -m pip wheel -q --no-deps -w "$WHEELS" "$REPO"
# pip takes each platform tag literally: every glibc from 2.17 (manylinux2014) to 2.36.
PLATFORMS=$(seq 17 36 | sed "s/.*/--platform manylinux_2_&_$MACHINE/" | tr '\n' ' ')
# shellcheck disable=SC2086
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$WHEELS" \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  --platform "manylinux2014_$MACHINE" $PLATFORMS -r "$HERE/requirements.lock"
# The install list: the lock plus the project itself, exact versions.
{ grep -v '^#' "$HERE/requirements.lock"; echo "portique==$VERSION"; } \
  > "$ROOT/opt/portique/requirements.txt"
for whl in "$WHEELS"/*.whl; do
  case "$whl" in *-linux_*.whl)
    echo "build.sh: $whl is not a manylinux wheel: it would not run on a gate" >&2; exit 1;;
  esac
done

echo "== files"
install -d "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/lib/systemd/system" \
  "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d" "$ROOT/etc/portique" \
  "$ROOT/usr/share/doc/portique" "$ROOT/usr/share/man/man1" \
  "$ROOT/usr/share/lintian/overrides" "$ROOT/opt/portique/docs" \
  "$ROOT/opt/portique/systemd/gate.service.d"
install -m 0755 "$HERE/gate.sh" "$ROOT/usr/bin/gate"
for unit in gate.service gate-sync.service gate-sync.timer; do
  install -m 0644 "$REPO/systemd/$unit" "$ROOT/lib/systemd/system/$unit"
done
install -m 0644 "$REPO/systemd/gate.service.d/network.conf.example" \
  "$ROOT/opt/portique/systemd/gate.service.d/network.conf.example"
install -m 0644 "$REPO/systemd/portique.sysusers.conf" "$ROOT/usr/lib/sysusers.d/portique.conf"
install -m 0644 "$HERE/portique.tmpfiles" "$ROOT/usr/lib/tmpfiles.d/portique.conf"
install -m 0644 "$REPO/config/gate.toml" "$ROOT/etc/portique/gate.toml.example"
install -m 0644 "$REPO"/docs/*.md "$ROOT/opt/portique/docs/"
install -m 0644 "$REPO/README.md" "$ROOT/usr/share/doc/portique/README.md"
install -m 0644 "$HERE/copyright" "$ROOT/usr/share/doc/portique/copyright"
gzip -9n < "$HERE/changelog" > "$ROOT/usr/share/doc/portique/changelog.gz"
gzip -9n < "$HERE/gate.1" > "$ROOT/usr/share/man/man1/gate.1.gz"
install -m 0644 "$HERE/lintian-overrides" "$ROOT/usr/share/lintian/overrides/portique"
for script in postinst prerm postrm; do
  install -m 0755 "$HERE/$script" "$ROOT/DEBIAN/$script"
done
echo /etc/portique/gate.toml.example > "$ROOT/DEBIAN/conffiles"
chmod 0644 "$ROOT"/opt/portique/wheels/*.whl "$ROOT/opt/portique/requirements.txt"

SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
  "$HERE/control.in" > "$ROOT/DEBIAN/control"
(cd "$ROOT" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z \
  | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles" "$ROOT/DEBIAN/md5sums"

echo "== package"
# Owned by root, dates of the last commit: the same tree gives the same package. gzip:
# the wheels are compressed already, xz would only spend a minute more for a few per cent.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zgzip --build "$ROOT" "$DEB" >/dev/null
echo "$DEB ($(du -h "$DEB" | cut -f1), $(ls "$WHEELS" | wc -l) wheels)"
