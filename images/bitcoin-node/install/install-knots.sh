#!/bin/sh
# Bitcoin Knots from Debian trixie-backports (offline-capable: only Debian's archive is needed).
set -eu
version=$1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
echo "deb $mirror trixie-backports main" > /etc/apt/sources.list.d/trixie-backports.list
apt-get update -qq
candidate=$(apt-cache madison bitcoin-knots | awk -v v="$version" '$3 ~ "^"v {print $3; exit}')
if [ -z "$candidate" ]; then
  echo "peerlab: bitcoin-knots $version is not in trixie-backports; available:" >&2
  apt-cache madison bitcoin-knots >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -t trixie-backports "bitcoin-knots=$candidate"
apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
bitcoind -version | head -1
