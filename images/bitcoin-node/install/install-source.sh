#!/bin/sh
# A node compiled from source by tools/build_node.py (source/build.sh): its binaries and the Debian
# packages of the libraries they link, from prebuilt/bitcoin.tar.
set -eu
prebuilt=/opt/peerlab/prebuilt/bitcoin.tar
mkdir -p /tmp/prebuilt && tar -x -C /tmp/prebuilt -f "$prebuilt"
apt-get update -qq
# shellcheck disable=SC2046
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(cat /tmp/prebuilt/PACKAGES)
cp -a /tmp/prebuilt/usr/local/bin/. /usr/local/bin/
rm -rf /tmp/prebuilt /opt/peerlab/prebuilt/bitcoin.tar
apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
bitcoind -version | head -1
