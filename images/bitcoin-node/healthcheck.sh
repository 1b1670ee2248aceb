#!/bin/sh
# Healthy when bitcoind answers RPC (it returns an error while still loading).
exec bitcoin-cli -rpcclienttimeout=4 getblockchaininfo >/dev/null
