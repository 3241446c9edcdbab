"""A synthetic multi-branch pipeline: three traffic classes with different work, and a queue.

    tailgate run examples/pipeline.py seconds=0.2 --clock virtual --out results/demo

    Source -> WeightedRandomSplit -0-> CheckIPHeader -> DecTTL -> IPv4Lookup ==(2 gates)==> Merge.0
                                  -1-> Bypass "heavy" -> Queue -> Bypass "light" ---------> Merge.1
                                  -2-> RateLimiter -> VLANPush -> Bypass "bulk" ----------> Merge.2
           Merge -> Measure -> Sink

Branch 0 is a small router. Branch 1 is an expensive network function whose cost is mostly per
batch (T0 >> T1, as Batchy's examples), decoupled by a queue: what follows the queue is its own
task, scheduled by the worker. Branch 2 is bulk traffic, policed and VLAN-tagged. Measure
reports each packet's delay from its scheduled arrival, per flow and overall (summary.json,
"measures"); every module's counters are in counters.csv.

Arguments (k=v words, or one "a=1,b=2" list):
    rate_pps (250_000)      offered load             seconds (0.2)        clock time to run
    flows (64)              random flows             size (64)            frame bytes, or imix
    weights (6,3,1)         traffic split            bulk_rate_pps (2e4)  the policer's rate
    heavy_t0_ns (50_000)    heavy NF cost per batch  heavy_t1_ns (100)    ... and per packet
    queue (512)             queue size, packets      seed (1)             same seed, same run

The heavy NF's cost is mostly per batch (think of a kernel launch or a container call), so its
batches grow with the load: raise rate_pps and watch the batch sizes (batches_in) and delays.
"""

rate_pps = get_arg("rate_pps", 250_000.0, float)
seconds = get_arg("seconds", 0.2, float)
flows = get_arg("flows", 64, int)
size = get_arg("size", "64", str)
weights = get_arg("weights", "6,3,1", str)
bulk_rate_pps = get_arg("bulk_rate_pps", 20_000.0, float)
heavy_t0_ns = get_arg("heavy_t0_ns", 50_000.0, float)
heavy_t1_ns = get_arg("heavy_t1_ns", 100.0, float)
queue_packets = get_arg("queue", 512, int)
seed = get_arg("seed", 1, int)

sizes = {"size_dist": "imix"} if size == "imix" else {"size_bytes": int(size)}
src = Source("src", rate_pps=rate_pps, flows=flows, dst_prefix="10.0.0.0/14", seed=seed, **sizes)
split = WeightedRandomSplit("split", weights=weights, seed=seed)
merge = Merge("merge", inputs=3)
src >> split

# 0: a small router: header check, TTL, longest-prefix match to two next hops
lookup = IPv4Lookup("lookup", routes_list=[("10.0.0.0/15", 0), ("10.2.0.0/15", 1)])
split[0] >> CheckIPHeader("check") >> DecTTL("ttl") >> lookup
lookup[0] >> merge.input(0)
lookup[1] >> merge.input(0)

# 1: an expensive NF, then a queue; "light" runs in the queue's own task
queue = Queue("queue", size=queue_packets)
split[1] >> Bypass("heavy", t0_ns=heavy_t0_ns, t1_ns=heavy_t1_ns) >> queue
queue >> Bypass("light", t0_ns=200, t1_ns=20) >> merge.input(1)

# 2: bulk traffic: policed, tagged with VLAN 100
police = RateLimiter("police", rate_pps=bulk_rate_pps, burst_packets=64)
split[2] >> police >> VLANPush("vlan", vid=100) >> Bypass("bulk", t0_ns=500, t1_ns=50) >> merge.input(2)

merge >> Measure("measure", max_flows=flows) >> Sink("sink")

summary = run(seconds=seconds)
m = summary["measures"]["measure"]["all"]
log.info("%d packets measured: p50 %s ns, p99 %s ns", m["packets"], m["p50_ns"], m["p99_ns"])
