#!/bin/sh
# /usr/bin/gate: the gate command of the portique package, from the venv its postinst
# built under /opt/portique from the package's wheelhouse.
exec /opt/portique/.venv/bin/gate "$@"
