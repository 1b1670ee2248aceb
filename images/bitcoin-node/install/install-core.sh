#!/bin/sh
# Bitcoin Core official release: download, verify SHA256SUMS signatures and the tarball's hash,
# fail closed on any doubt, then install. Needs the internet and builder keys in keys/core/.
set -eu
version=$1
# Compiled from a source tree by tools/build_node.py: no download.
[ -f /opt/peerlab/prebuilt/bitcoin.tar ] && exec "$(dirname "$0")/install-source.sh"
arch=$(uname -m)
url=${CORE_RELEASE_URL:-https://bitcoincore.org/bin/bitcoin-core-$version}
tarball="bitcoin-$version-$arch-linux-gnu.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl gpg gpg-agent dirmngr
cd "$work"
for file in "$tarball" SHA256SUMS SHA256SUMS.asc; do
  curl --fail --silent --show-error --location --retry 3 -o "$file" "$url/$file"
done
python3 /opt/peerlab/install/verify-release.py --sums SHA256SUMS --signatures SHA256SUMS.asc \
  --keys /opt/peerlab/keys/core --min-signatures "${CORE_MIN_SIGNATURES:-3}" "$tarball"
tar -xzf "$tarball" --strip-components=1 -C /usr/local --wildcards '*/bin/*'
apt-get purge -y -qq curl gpg gpg-agent dirmngr >/dev/null && apt-get autoremove -y -qq >/dev/null
apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
bitcoind -version | head -1
