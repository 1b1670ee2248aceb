#!/bin/sh
# Statoshi (Bitcoin Core with statsd instrumentation) built from source at a pinned commit.
# Needs the internet (GitHub). The checked-out commit must equal the pin, or the build fails.
set -eu
commit=$1
repository=${STATOSHI_REPOSITORY:-https://github.com/jlopp/statoshi.git}
case "$commit" in
  *[!0-9a-f]*|"") echo "peerlab: statoshi version must be a full commit hash, got '$commit'" >&2; exit 2 ;;
esac
[ ${#commit} -eq 40 ] || { echo "peerlab: statoshi version must be a 40-digit commit hash" >&2; exit 2; }
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  git ca-certificates build-essential cmake pkgconf python3 libboost-dev libevent-dev \
  libsqlite3-dev libzmq3-dev autoconf automake libtool
src=$(mktemp -d)
git init -q "$src" && cd "$src"
git fetch -q --depth 1 "$repository" "$commit"
git checkout -q FETCH_HEAD
[ "$(git rev-parse HEAD)" = "$commit" ] || { echo "peerlab: fetched commit differs from pin" >&2; exit 1; }
if [ -f CMakeLists.txt ]; then
  cmake -B build -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF -DWITH_ZMQ=ON -DCMAKE_INSTALL_PREFIX=/usr/local
  cmake --build build -j"$(nproc)" && cmake --install build
else
  ./autogen.sh && ./configure --disable-tests --disable-bench --without-gui --prefix=/usr/local
  make -j"$(nproc)" && make install
fi
cd / && rm -rf "$src"
apt-get purge -y -qq git build-essential cmake autoconf automake libtool >/dev/null
apt-get autoremove -y -qq >/dev/null; apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
bitcoind -version | head -1
