#!/bin/sh
# Build bitcoind and bitcoin-cli (wallet on; no GUI, tests, benches, IPC or ZMQ) from the source
# tree read as a tar on stdin. Progress goes to stderr; stdout gets a tar of the installed files
# (usr/local/bin) and of PACKAGES, the Debian packages their shared libraries come from.
set -eu
mkdir -p /src /out
tar -x -C /src
cd /src
[ -f CMakeLists.txt ] || { echo "peerlab: the source has no CMakeLists.txt (a CMake tree: Bitcoin Core 29 or later, Statoshi)" >&2; exit 2; }
ccache --zero-stats >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWITH_CCACHE=ON -DENABLE_WALLET=ON \
  -DBUILD_GUI=OFF -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF -DBUILD_FUZZ_BINARY=OFF -DENABLE_IPC=OFF \
  -DWITH_ZMQ=OFF -DBUILD_TX=OFF -DBUILD_UTIL=OFF -DBUILD_WALLET_TOOL=OFF -DBUILD_BITCOIN_BIN=OFF \
  -DINSTALL_MAN=OFF -DCMAKE_INSTALL_PREFIX=/usr/local >&2
cmake --build build -j"$(nproc)" >&2
DESTDIR=/out cmake --install build --strip >&2
echo "peerlab: compiler cache: $(ccache --print-stats | awk -F'\t' '$1=="direct_cache_hit"||$1=="preprocessed_cache_hit"{h+=$2} $1=="cache_miss"{m=$2} END{print h+0 " hits, " m+0 " misses"}')" >&2
# The packages of the libraries the binaries link, for the node image to install.
for binary in /out/usr/local/bin/*; do ldd "$binary"; done | awk '$3 ~ /^\// {print $3}' | sort -u \
  | while read -r library; do dpkg -S "$(readlink -f "$library")" 2>/dev/null || dpkg -S "$library"; done \
  | cut -d: -f1 | sort -u > /out/PACKAGES
ls -l /out/usr/local/bin >&2
tar -c -C /out .
