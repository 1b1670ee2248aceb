#!/bin/sh
# Install one Bitcoin implementation into the image: install.sh IMPLEMENTATION VERSION
set -eu
implementation=$1
version=$2
here=$(dirname "$0")
case "$implementation" in
  knots|core|statoshi) exec "$here/install-$implementation.sh" "$version" ;;
  *) echo "peerlab: unknown implementation '$implementation' (knots, core or statoshi)" >&2; exit 2 ;;
esac
