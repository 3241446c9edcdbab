"""A minimal IPv4 router over a capture.

    tailgate run examples/router.py pcap=IN.pcap routes=examples/routes.txt out=OUT.pcap

(routes defaults to routes.txt next to this script; out to out.pcap in the results directory.
To try it: ``tailgate pcap gen in.pcap --dst-prefix 10.2.0.0/15``, destinations that routes.txt
spreads over all three next hops.)

PcapSource -> CheckIPHeader -> IPv4Lookup --(one branch per next hop)--> DecTTL -> MACRewrite
-> IPChecksum --> Merge -> Measure -> PcapSink

Each next hop g (an output gate of the lookup) gets destination MAC 02:00:00:00:01:gg and the
router's own MAC as source. Non-IPv4 frames, malformed headers, bad checksums, packets without a
route and TTL <= 1 are dropped; each module counts its drops by reason (counters.csv:
``check,CheckIPHeader,drops.bad_ihl,1``, ``ttl1,DecTTL,drops.ttl_expired,3``, ...).
"""

import os

pcap = get_arg("pcap", type=str)  # the input capture (required)
routes = get_arg("routes", os.path.join(os.path.dirname(__file__), "routes.txt"), str)
out = get_arg("out", str(results_dir / "out.pcap"), str)
router_mac = get_arg("mac", "02:00:00:00:00:fe", str)

src = PcapSource("input", path=pcap)
check = CheckIPHeader("check")  # not_ipv4, truncated, bad_ihl, bad_checksum, ...
lookup = IPv4Lookup("lookup", routes=routes)  # as many gates as next hops the file uses
merge = Merge("merge", inputs=lookup.n_ogates)
src >> check >> lookup

for hop in range(lookup.n_ogates):
    rewrite = MACRewrite(f"mac{hop}", src=router_mac, dst=f"02:00:00:00:01:{hop:02x}")
    lookup[hop] >> DecTTL(f"ttl{hop}") >> rewrite >> IPChecksum(f"csum{hop}") >> merge.input(hop)

merge >> Measure("measure") >> PcapSink("output", path=out)
log.info("routing %s with %s over %d next hops into %s", pcap, routes, lookup.n_ogates, out)
