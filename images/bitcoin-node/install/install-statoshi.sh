#!/bin/sh
# Statoshi (Bitcoin Core with statsd instrumentation), compiled from source by tools/build_node.py.
set -eu
commit=$1
if [ ! -f /opt/peerlab/prebuilt/bitcoin.tar ]; then
  echo "peerlab: statoshi $commit is built from its source: run \`make statoshi SOURCE=<a statoshi git directory or tree>\`" \
       "(or tools/build_node.py statoshi <git URL> --ref $commit); docs/images.md" >&2
  exit 2
fi
exec "$(dirname "$0")/install-source.sh"
