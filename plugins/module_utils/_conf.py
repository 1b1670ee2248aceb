# Copyright: peerlab developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bitcoin.conf knowledge shared by the topology validator, the inventory plugin and the image.

peerlab owns the keys that wire a node into a lab (chain, RPC, credentials, ports, data directory).
Everything else a user may set per node, as long as the implementation knows the key.
"""

from __future__ import annotations

import re

CHAINS: dict[str, dict[str, object]] = {
    # chain name in the topology -> bitcoind's -chain value, conf section, default ports and the
    # folder of the data directory its files go to (mainnet's are at the top)
    "mainnet": {"chain": "main", "section": "main", "p2p": 8333, "rpc": 8332, "dir": ""},
    "testnet3": {"chain": "test", "section": "test", "p2p": 18333, "rpc": 18332, "dir": "testnet3"},
    "testnet4": {"chain": "testnet4", "section": "testnet4", "p2p": 48333, "rpc": 48332, "dir": "testnet4"},
    "signet": {"chain": "signet", "section": "signet", "p2p": 38333, "rpc": 38332, "dir": "signet"},
    "regtest": {"chain": "regtest", "section": "regtest", "p2p": 18444, "rpc": 18443, "dir": "regtest"},
}


def cookie_path(chain: str, datadir: str) -> str:
    """Where bitcoind writes its RPC cookie for a chain, below the node's data directory."""
    return "/".join(part for part in (datadir, str(CHAINS[chain]["dir"]), ".cookie") if part)


# Keys peerlab renders itself; a user setting them would break wiring, credentials or isolation.
MANAGED_KEYS = frozenset(
    {
        "chain", "regtest", "testnet", "testnet4", "signet", "datadir", "conf", "includeconf",
        "daemon", "daemonwait", "pid", "server", "rpcauth", "rpcuser", "rpcpassword", "rpcbind",
        "rpcallowip", "rpcport", "rpccookiefile", "port", "bind", "listenonion", "printtoconsole",
    }
)

# Options of Bitcoin Core 29 (bitcoind -help -help-debug), grouped as in its help text.
_CORE_KEYS = """
alertnotify assumevalid blockfilterindex blocknotify blockreconstructionextratxn blocksdir
blocksonly blocksxor coinstatsindex dbbatchsize dbcache debug debugexclude debuglogfile
loadblock logips logsourcelocations logthreadnames logtimemicros logtimestamps loglevel loglevelalways
maxmempool maxorphantx mempoolexpiry par persistmempool persistmempoolv1 prune reindex
reindex-chainstate settings shrinkdebugfile startupnotify shutdownnotify sysperms txindex umask
addnode asmap bantime cjdnsreachable connect discover dns dnsseed externalip fixedseeds
forcednsseed i2pacceptincoming i2psam listen maxconnections maxreceivebuffer maxsendbuffer
maxtimeadjustment maxuploadtarget natpmp networkactive onion onlynet peerblockfilters
peerbloomfilters peertimeout permitbaremultisig proxy proxyrandomize seednode timeout torcontrol
torpassword v2transport whitebind whitelist
addresstype avoidpartialspends changetype consolidatefeerate disablewallet discardfee keypool
maxapsfee maxtxfee mintxfee paytxfee signer spendzeroconfchange txconfirmtarget unsafesqlitesync
wallet walletbroadcast walletcrosschain walletdir walletnotify walletrbf
zmqpubhashblock zmqpubhashblockhwm zmqpubhashtx zmqpubhashtxhwm zmqpubrawblock zmqpubrawblockhwm
zmqpubrawtx zmqpubrawtxhwm zmqpubsequence zmqpubsequencehwm
acceptnonstdtxn acceptstalefeeestimates capturemessages checkaddrman checkblockindex checkblocks
checklevel checkmempool checkpoints deprecatedrpc fastprune limitancestorcount limitancestorsize
limitdescendantcount limitdescendantsize maxtipage mocktime stopafterblockimport stopatheight
testactivationheight uacomment
bytespersigop datacarrier datacarriersize dustrelayfee incrementalrelayfee minrelaytxfee
mempoolfullrbf whitelistforcerelay whitelistrelay
blockmaxweight blockmintxfee blockversion
rest rpcdoccheck rpcservertimeout rpcthreads rpcwhitelist rpcwhitelistdefault rpcworkqueue
signetchallenge signetseednode vbparams fallbackfee
"""

# Extra policy and tuning options Bitcoin Knots 29 adds on top of Core.
_KNOTS_KEYS = """
blockprioritysize blockmaxsize corepolicy datacarriercost datacarrierfullcount maxscriptsize
mempoolreplacement mempooltruc minrelaycoinblocks minrelaymaturity permitbarepubkey
permitbaremultisig permitephemeral rejectparasites rejecttokens spkreuse acceptnonstddatacarrier
acceptunknownwitness bytespersigopstrict datacarrierfullcount lowmem maxtxlegacysigops
rpccookieperms softwareexpiry
"""

KNOWN_KEYS: dict[str, frozenset[str]] = {
    "core": frozenset(_CORE_KEYS.split()),
    "knots": frozenset(_CORE_KEYS.split()) | frozenset(_KNOTS_KEYS.split()),
    # Statoshi registers no option of its own: it sends statsd to 127.0.0.1:8125 (relayed to the
    # collector by the node's entrypoint), and its `statshostname` is read but never registered,
    # so bitcoind ignores it in bitcoin.conf; the collector names the series after the sender.
    "statoshi": frozenset(_CORE_KEYS.split()),
}


# A conf key as bitcoind reads it: letters, digits and dashes; `<section>.<key>` is refused so a
# managed key cannot come back as `regtest.rpcallowip` (nor as its negation `norpcallowip`).
KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Characters that would end a bitcoin.conf line or start a comment: a value holding one could
# write a second key (`uacomment: "x\nrpcallowip=0.0.0.0/0"`) past every check above.
_LINE_BREAKERS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029#]")


def key_problem(key: object) -> str | None:
    """Why a conf key cannot be written to bitcoin.conf (a phrase after the key's name), or None."""
    if not isinstance(key, str) or not KEY.match(key):
        return "must be lowercase letters, digits and dashes (no section prefix, no spaces or '=')"
    if key in MANAGED_KEYS or (key.startswith("no") and key[2:] in MANAGED_KEYS):
        return "is managed by peerlab and cannot be set"
    return None


def value_problem(value: object) -> str | None:
    """Why a conf value cannot be written as one bitcoin.conf line (a phrase after the key's name), or None."""
    for text in render_value(value):
        found = _LINE_BREAKERS.search(text)
        if found:
            what = "'#' (starts a comment)" if found.group() == "#" else f"{found.group()!r} (a line break or control character)"
            return f"has a value {text!r} that contains {what}: a value must stay on its own line"
    return None


def line_problem(line: str) -> str | None:
    """Why a rendered `key=value` line cannot go into bitcoin.conf (a phrase after the line), or None.
    Checked where lines are rendered and again where the node reads them: whatever produced them."""
    key, equals, value = line.partition("=")
    if not equals:
        return "is not key=value"
    problem = key_problem(key)
    if problem:
        return f"sets '{key}', which peerlab manages" if problem.startswith("is managed") else f"has a key that {problem}"
    return value_problem(value)


def render_value(value: object) -> list[str]:
    """Return the conf-file spellings of one value (a list gives the key once per item)."""
    if isinstance(value, bool):
        return ["1" if value else "0"]
    if isinstance(value, list):
        return [item for element in value for item in render_value(element)]
    return [str(value)]


def render_lines(conf: dict[str, object]) -> list[str]:
    """Render user conf keys as sorted `key=value` lines, the order stable so env does not drift."""
    lines: list[str] = []
    for key in sorted(conf):
        lines.extend(f"{key}={value}" for value in render_value(conf[key]))
    return lines


def chain_defaults(chain: str) -> dict[str, object]:
    """Conf every node of a chain gets unless the topology overrides it."""
    defaults: dict[str, object] = {"dbcache": 100, "maxmempool": 100}
    if chain == "regtest":
        # The extractor reads events from these log lines (docs/events.md): net (messages,
        # connections), mempool and mempoolrej (transactions accepted, rejected); logips puts the
        # peer's address on connection lines; logtimemicros gives each line the time it happened
        # to the microsecond (block propagation is measured between nodes' lines).
        defaults.update({"fallbackfee": "0.0002", "dbcache": 50, "maxmempool": 50,
                         "debug": ["net", "mempool", "mempoolrej"], "logips": 1, "logtimemicros": 1})
    if chain in ("mainnet", "testnet3", "testnet4", "signet"):
        # Connected to the real network: pruned unless the user asks for the whole chain.
        defaults.update({"prune": 550, "dbcache": 300})
    return defaults


# Disk a node on a public chain needs when it keeps every block (prune=0), in GiB: blocks, undo data
# and chainstate as of late 2026, with room for a year's growth. A pruned node needs far less.
FULL_CHAIN_GIB: dict[str, int] = {"mainnet": 900, "testnet3": 250, "testnet4": 40, "signet": 40}


def unpruned_need_gib(chain: str, conf: dict[str, object]) -> int:
    """GiB an unpruned node of this chain needs; 0 when it is pruned or its chain is small (regtest)."""
    if chain not in FULL_CHAIN_GIB:
        return 0
    try:
        prune = int(str(conf.get("prune", 0)))
    except ValueError:
        return 0
    # prune=1 is manual pruning: the chain grows until someone calls pruneblockchain.
    return FULL_CHAIN_GIB[chain] if prune in (0, 1) else 0
