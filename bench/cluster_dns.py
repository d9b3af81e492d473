"""bench/cluster_dns.py (not dns.py: run as a script, that name would shadow dnspython's `dns` package):
the cluster DNS server (agent/dns) against Debian's dnsmasq, same names, same run.

    .venv/bin/python bench/cluster_dns.py                               # about a minute
    .venv/bin/python bench/cluster_dns.py --services 50 --seconds 1     # smoke test

Both servers answer the same --services names `web-<i>.default.svc.cluster.local`
(A, a cluster IP each) on loopback: Skiff's from its record index (a separate process
running the real `DnsServer`, `Responder`, `ZoneAnswerer` and `RecordIndex`, fed the
Services as plain Kubernetes dicts), dnsmasq from a hosts file (`--no-daemon --port N
--addn-hosts FILE --no-resolv --no-hosts`). The load comes from dnsperf (C, so the
generator is not the bottleneck), asking every name in turn:

0. warm-up: --warmup seconds of the same questions to each server, not counted (Skiff's
   answer cache, dnsmasq's own structures and the page cache see every name once first).
1. throughput: queries/s with up to 100 queries outstanding for --seconds, and the
   server's CPU meanwhile (% of one core, and µs per answer: steadier on a busy machine). Servers alternate over --rounds rounds, so
   background load on a shared machine hits them alike; the best round of each counts.
   Skiff is measured twice: as it runs (repeated questions answered from its cache of
   encoded answers) and with that cache off (every answer parsed and built by dnspython),
   so the cost of a first question is on record too.
2. latency at a fixed rate: --rate queries/s for --latency-seconds, every query's latency from
   dnsperf -v, p50/p90/p99; --rounds rounds. Servers are asked AT THE SAME TIME, each by its own
   dnsperf, beside a floor: the simplest UDP responder (`serve_floor`: a blocking loop answering
   from a precomputed table, no event loop, no parse), so a stall of the machine lands on all of
   them alike and every server's p99 has the machine's own next to it, from the same seconds.
   Groups: floor + Skiff + dnsmasq; floor + each costlier Skiff variant (no cache: 0.2-0.3 ms of CPU
   a question would delay the others). On this 2-vCPU VM the floor's p99 itself swings from 0.2 ms
   to 3-4 ms and beyond from one 10 s round to the next (docs/PERFORMANCE.md): measured one after the
   other (--one-at-a-time, as before 7 Dec), a server's figure said more about its turn than about it.
   With --realtime (root) those rounds run the servers and dnsperf at SCHED_FIFO priority 1: the
   server's own latency, not its wait for a core behind everyone else's processes (at 1,000
   queries/s either server needs ~1.5 % of a core). Each round runs a stall probe alongside (a thread
   per CPU at the same priority, waking every millisecond, `StallProbe`): how late they woke says
   whether the machine itself stalled in that round (a vCPU descheduled by the hypervisor shows as
   ~100 ms for whatever runs on it). The summary counts, per server, the rounds in which it held
   p99 <= 2 ms among those in which the floor held it (the machine allowed it).

Goal (issue 12): Skiff >= 0.5x dnsmasq's queries/s; p99 <= 2 ms at 1,000 queries/s.
Every process is started here and stopped by PID, also on failure.
Results: bench/results/cluster_dns.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))                     # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import RESULTS_DIR, CpuMeter, free_port, percentiles, stop_process, wait_for  # noqa: E402

ZONE = "cluster.local"


def cluster_ip(i: int) -> str:
    return f"10.96.{i // 250}.{i % 250 + 1}"


def name_of(i: int) -> str:
    return f"web-{i}.default.svc.{ZONE}"


def services(count: int) -> list[dict[str, Any]]:
    return [{"metadata": {"name": f"web-{i}", "namespace": "default"},
             "spec": {"clusterIP": cluster_ip(i), "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
            for i in range(count)]


# -- the Skiff server process (python bench/cluster_dns.py --serve) ---------------------------------

PROXY_TABLE = "skiff-dnsbench-proxy"
FLOOR = "floor (trivial responder)"
GOAL_P99_MS = 2.0


async def proxy_churn(netns: str, ready: asyncio.Event) -> None:
    """What else an agent's event loop does, in the DNS server's loop: a real ServiceProxy with
    1,000 Services x 10 endpoints programmed (its nftables table in namespace `netns`, not this
    machine's), then one endpoint flipping ready/not ready every 50 ms, as bench/services.py."""
    import random
    from agent.network.netns import in_netns
    from agent.proxy import ServiceProxy
    proxy = ServiceProxy(node_name="a", cluster_cidr="198.19.0.0/16", table=PROXY_TABLE, check_interval=3600,
                         flush_conntrack=False)

    def endpoint_slice(i: int, ready: list[bool]) -> dict[str, Any]:
        return {"addressType": "IPv4",
                "metadata": {"namespace": "default", "name": f"web-{i}-x",
                             "labels": {"kubernetes.io/service-name": f"web-{i}"}},
                "endpoints": [{"addresses": [f"198.19.{128 + (i * 10 + j) // 250}.{(i * 10 + j) % 250 + 1}"],
                               "nodeName": f"n{j}", "conditions": {"ready": r}} for j, r in enumerate(ready)],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    with in_netns(f"/run/netns/{netns}"):
        await proxy.nft.call(lambda: None)        # its worker thread starts (and stays) in that namespace
    task: asyncio.Task[None] | None = None
    try:
        states = {i: [True] * 10 for i in range(1000)}
        for i, service in enumerate(services(1000)):
            proxy.service_changed(service)
            proxy.slice_changed(endpoint_slice(i, states[i]))
        await proxy.sync()
        task = asyncio.create_task(proxy.run())
        ready.set()
        rng = random.Random(1)
        while True:
            i, j = rng.randrange(1000), rng.randrange(10)
            states[i][j] = not states[i][j]
            proxy.slice_changed(endpoint_slice(i, states[i]))
            await asyncio.sleep(0.05)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await proxy.delete_table()
        finally:
            await proxy.close()


async def serve(count: int, answer_cache: bool, proxy_netns: str | None = None) -> None:
    from agent.dns.answer import ZoneAnswerer
    from agent.dns.forward import Forwarder
    from agent.dns.records import RecordIndex
    from agent.dns.responder import Responder
    from agent.dns.server import DnsServer
    index = RecordIndex(ZONE)
    for service in services(count):
        index.set_service(service)
    responder = Responder(ZoneAnswerer(index), Forwarder([]), cache_size=10_000 if answer_cache else 0)
    server = DnsServer(responder, host="127.0.0.1", port=0)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    churn: asyncio.Task[None] | None = None
    if proxy_netns:
        churning = asyncio.Event()
        churn = asyncio.create_task(proxy_churn(proxy_netns, churning))
        await asyncio.wait([churn, asyncio.create_task(churning.wait())], return_when=asyncio.FIRST_COMPLETED)
        if churn.done():
            churn.result()                       # raises what went wrong
    print(f"ready {server.port}", flush=True)
    await stop.wait()
    if churn is not None:
        churn.cancel()
        await asyncio.gather(churn, return_exceptions=True)
    await server.close()


def floor_answers(count: int) -> dict[bytes, bytes]:
    """The floor's table: a question's bytes (after the 12-byte header) -> its whole answer but the id,
    encoded once with dnspython (the same answers the other servers give)."""
    import dns.flags
    import dns.message
    import dns.rrset
    table = {}
    for i in range(count):
        query = dns.message.make_query(name_of(i), "A")
        query.flags &= ~dns.flags.RD
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        reply.answer.append(dns.rrset.from_text(name_of(i) + ".", 30, "IN", "A", cluster_ip(i)))
        table[query.to_wire()[12:]] = reply.to_wire()[2:]
    return table


def serve_floor(count: int) -> None:
    """The machine's floor: the simplest UDP responder there is - a blocking loop, no event loop, no
    parse, the answer looked up by the question's bytes in a precomputed table. Whatever latency it
    shows at a fixed rate is the machine's (scheduling, vCPU wake-ups, the hypervisor), not a DNS
    server's. (Answers only the bench's own questions, RD bit aside; a question it does not know is
    dropped.)"""
    table = floor_answers(count)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"ready {sock.getsockname()[1]}", flush=True)
    receive, send, lookup = sock.recvfrom, sock.sendto, table.get
    while True:
        data, addr = receive(512)
        if len(data) < 12:
            continue
        tail = lookup(data[12:])
        if tail is not None:
            rd = data[2] & 0x01                   # the client's RD bit, echoed as a server does
            send(data[:2] + bytes([tail[0] | rd]) + tail[1:], addr)


# -- the bench ---------------------------------------------------------------------------------

class Server:
    """One DNS server process under test, on a loopback port."""

    def __init__(self, label: str, argv: list[str], port: int | None) -> None:
        self.label = label
        self.argv = argv
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        if self.port is None:        # ours prints "ready PORT"
            line = self.proc.stdout.readline().split()
            if len(line) != 2 or line[0] != "ready":
                raise RuntimeError(f"{self.label} did not start: {line} {self.proc.stderr.read()[-2000:]}")
            self.port = int(line[1])
        wait_for(lambda: self.answers(name_of(0)), timeout=10, what=f"{self.label} to answer")
        return self

    def answers(self, name: str) -> str | None:
        import dns.message
        import dns.query
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.label} exited with {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}")
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.port, timeout=0.5)
        except Exception:   # noqa: BLE001 - not up yet
            return None
        return reply.answer[0][0].to_text() if reply.answer else None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
            self.proc = None


class StallProbe:
    """Threads, one pinned to each CPU, that ask to wake every millisecond and record how late they
    woke: the machine's own stalls (a vCPU descheduled by the hypervisor, a core held by others),
    seen in the same round as the server's latencies. With `realtime` they run at SCHED_FIFO 1, as
    the server and dnsperf do. The main thread meanwhile only waits for dnsperf, so the probes do
    not compete with it for the GIL (nor, sleeping almost always, with anything for a core)."""

    PERIOD = 0.001

    def __init__(self, *, realtime: bool) -> None:
        import threading
        self.realtime = realtime
        self.late: dict[int, list[float]] = {cpu: [] for cpu in sorted(os.sched_getaffinity(0))}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(cpu,), name=f"stall-probe-{cpu}", daemon=True)
                         for cpu in self.late]

    def _run(self, cpu: int) -> None:
        os.sched_setaffinity(0, {cpu})                                        # this thread only
        if self.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        clock, sleep, late = time.monotonic, time.sleep, self.late[cpu]
        while not self._stop.is_set():
            before = clock()
            sleep(self.PERIOD)
            late.append(clock() - before - self.PERIOD)

    def __enter__(self) -> "StallProbe":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def summary(self) -> dict[str, Any]:
        every = sorted(x for late in self.late.values() for x in late) or [0.0]
        return {"wakeups": len(every), "late_p99_ms": round(every[int(len(every) * 0.99)] * 1000, 2),
                "late_max_ms": round(every[-1] * 1000, 2),
                "late_max_ms_per_cpu": {cpu: round(max(late, default=0.0) * 1000, 2)
                                        for cpu, late in self.late.items()},
                "stalls_over_5_ms": sum(1 for x in every if x > 0.005)}


def dnsperf(port: int, queries: Path, *, seconds: float, rate: int | None = None,
            verbose: bool = False, realtime: bool = False) -> tuple[dict[str, float], list[float]]:
    argv = (["chrt", "--fifo", "1"] if realtime else []) + ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-t", "2"]
    if rate:
        argv += ["-Q", str(rate)]
    if verbose:
        argv.append("-v")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({done.returncode}): {done.stderr[-2000:]}")
    out = done.stdout

    def figure(label: str) -> float:
        found = re.search(rf"{label}:\s+([0-9.]+)", out)
        if not found:
            raise RuntimeError(f"dnsperf printed no {label!r}: {out[-2000:]}")
        return float(found.group(1))
    stats = {"queries_per_second": round(figure("Queries per second"), 1),
             "sent": int(figure("Queries sent")), "lost": int(figure("Queries lost")),
             "mean_latency_ms": round(figure(r"Average Latency \(s\)") * 1000, 3)}
    latencies = [float(m.group(2)) for m in re.finditer(r"^> (\w+) \S+ \S+ ([0-9.]+)$", out, re.M)
                 if m.group(1) == "NOERROR"] if verbose else []
    return stats, latencies


def fixed_rate_round(servers: list[Server], queries: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One fixed-rate round: each of `servers` asked by its own dnsperf at --rate, all at the same time
    (so a stall of the machine lands on all of them alike), with the stall probe beside them."""
    import threading
    out: dict[str, Any] = {}

    def measure(server: Server) -> None:
        try:
            out[server.label] = dnsperf(server.port, queries, seconds=args.latency_seconds, rate=args.rate,
                                        verbose=True, realtime=args.realtime)
        except Exception as exc:     # noqa: BLE001 - raised below, in the bench's thread
            out[server.label] = exc
    try:
        if args.realtime:
            for server in servers:
                os.sched_setscheduler(server.proc.pid, os.SCHED_FIFO, os.sched_param(1))
        with StallProbe(realtime=args.realtime) as probe:
            threads = [threading.Thread(target=measure, args=(server,)) for server in servers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        if args.realtime:
            for server in servers:
                os.sched_setscheduler(server.proc.pid, os.SCHED_OTHER, os.sched_param(0))
    rounds = []
    for server in servers:
        if isinstance(out[server.label], Exception):
            raise out[server.label]
        stats, latencies = out[server.label]
        stats.update(percentiles(latencies))
        stats["over_goal"] = sum(1 for x in latencies if x * 1000 > GOAL_P99_MS)
        stats["load_average"] = round(os.getloadavg()[0], 2)
        stats["machine_stalls"] = probe.summary()
        stats["label"] = server.label
        rounds.append(stats)
        print(f"{args.rate}/s {server.label:30} p50 {stats.get('p50')} ms  p99 {stats.get('p99')} ms  "
              f"max {stats.get('max')} ms  > {GOAL_P99_MS:g} ms: {stats['over_goal']}  lost {stats['lost']}  "
              f"load {stats['load_average']}  probe: {stats['machine_stalls']['stalls_over_5_ms']} stalls "
              f"> 5 ms, longest {stats['machine_stalls']['late_max_ms']} ms", flush=True)
    return rounds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds per server, alternating")
    p.add_argument("--rate", type=int, default=1000, help="queries/s of the fixed-rate latency run")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of queries (every name at least once) sent to each server before measuring")
    p.add_argument("--latency-seconds", type=float, default=None,
                   help="length of each fixed-rate round (default: --seconds)")
    p.add_argument("--realtime", action="store_true",
                   help="run the fixed-rate latency rounds with the server and dnsperf at SCHED_FIFO priority 1 "
                        "(root): the server's own latency, without the wait for a core behind other processes")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "cluster_dns.json")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="fixed-rate rounds: one server after the other (as before 7 Dec) instead of all at the "
                        "same time; a machine stall then lands on whichever server's turn it is")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-answer-cache", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--proxy-netns", help=argparse.SUPPRESS)
    p.add_argument("--proxy-churn", action="store_true",
                   help="also measure Skiff's server with a service proxy at work in its event loop, as in the "
                        "agent (1,000 Services programmed, 20 endpoint changes/s; root: the proxy's table is in "
                        "a network namespace of its own)")
    args = p.parse_args(argv)
    args.latency_seconds = args.latency_seconds or args.seconds
    if args.serve_floor:
        serve_floor(args.services)
        return 0
    if args.serve:
        asyncio.run(serve(args.services, not args.no_answer_cache, args.proxy_netns))
        return 0
    for tool, package in (("dnsmasq", "dnsmasq-base"), ("dnsperf", "dnsperf")):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"error: needs {tool} (apt install {package}; deploy/install.sh --test)", file=sys.stderr)
            return 1
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-dns-"))
    hosts, queries = work / "hosts", work / "queries"
    hosts.write_text("".join(f"{cluster_ip(i)} {name_of(i)}\n" for i in range(args.services)))
    queries.write_text("".join(f"{name_of(i)} A\n" for i in range(args.services)))
    me = [sys.executable, str(Path(__file__).resolve()), "--serve", "--services", str(args.services)]
    port = free_port()
    servers = {
        FLOOR: Server(FLOOR, [*me, "--serve-floor"], None),
        "skiff": Server("skiff", me, None),
        "skiff, no answer cache": Server("skiff, no answer cache", [*me, "--no-answer-cache"], None),
        "dnsmasq": Server("dnsmasq", [dnsmasq, "--no-daemon", f"--port={port}", "--listen-address=127.0.0.1",
                                      "--bind-interfaces", f"--addn-hosts={hosts}", "--no-resolv", "--no-hosts",
                                      "--conf-file=/dev/null", "--user=root", "--pid-file="], port),
    }
    proxy_netns = f"skiff-dnsbench-{os.getpid()}" if args.proxy_churn else None
    if proxy_netns:
        subprocess.run(["ip", "netns", "add", proxy_netns], check=True)
        servers["skiff, proxy churn in its loop"] = Server("skiff, proxy churn in its loop",
                                                           [*me, "--proxy-netns", proxy_netns], None)
    load_before = os.getloadavg()
    results: dict[str, Any] = {"throughput": {}, "fixed_rate": {}}
    try:
        for server in servers.values():
            server.start()
            if server.answers(name_of(args.services - 1)) != cluster_ip(args.services - 1):
                raise RuntimeError(f"{server.label} answers {name_of(args.services - 1)} wrongly")
            if args.warmup:        # every name asked at least once before anything is measured, each server alike
                dnsperf(server.port, queries, seconds=args.warmup, rate=max(args.rate, args.services))
        for round_ in range(args.rounds):
            for label, server in servers.items():
                if label == FLOOR:          # no DNS server: there for the fixed-rate rounds only
                    continue
                meter = CpuMeter({"server": server.proc.pid})
                meter.start()
                stats, _ = dnsperf(server.port, queries, seconds=args.seconds)
                stats["server_cpu_percent"] = meter.stop()["server"]
                # CPU per answer: less swayed by a busy machine than queries/s (a server that waits
                # for a core answers less, but each answer costs what it costs).
                stats["server_cpu_us_per_query"] = round(stats["server_cpu_percent"] / 100
                                                         / max(stats["queries_per_second"], 1e-9) * 1e6, 2)
                stats["load_average"] = round(os.getloadavg()[0], 2)
                results["throughput"].setdefault(label, []).append(stats)
                print(f"round {round_ + 1} {label:24} {stats['queries_per_second']:>9,.0f} queries/s  "
                      f"CPU {stats['server_cpu_percent']:5.1f} % ({stats['server_cpu_us_per_query']} µs/query)  "
                      f"lost {stats['lost']}  "
                      f"load {stats['load_average']}", flush=True)
        for _ in range(args.rounds):
            if args.one_at_a_time:
                groups = [[label] for label in servers]
            else:   # the floor beside each: Skiff and dnsmasq together; a costlier variant with the floor alone
                groups = [[FLOOR, "skiff", "dnsmasq"]] + [[FLOOR, label] for label in servers
                                                          if label not in (FLOOR, "skiff", "dnsmasq")]
            for group in groups:
                measured = fixed_rate_round([servers[label] for label in group], queries, args)
                floor_p99 = next((r.get("p99") for r in measured if r["label"] == FLOOR), None)
                for row in measured:
                    if row["label"] != FLOOR:
                        row["floor_p99_same_seconds"] = floor_p99
                    results["fixed_rate"].setdefault(row.pop("label"), []).append(row)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if proxy_netns:
            subprocess.run(["ip", "netns", "del", proxy_netns], check=False)
    best = {label: max(r["queries_per_second"] for r in runs) for label, runs in results["throughput"].items()}
    cpu = {label: min(r["server_cpu_us_per_query"] for r in runs) for label, runs in results["throughput"].items()}
    summary = {"best_queries_per_second": best, "least_server_cpu_us_per_query": cpu,
               "ratio_skiff_to_dnsmasq": round(best["skiff"] / best["dnsmasq"], 2),
               "ratio_no_cache_to_dnsmasq": round(best["skiff, no answer cache"] / best["dnsmasq"], 2),
               f"p99_ms_at_{args.rate}_per_second": {k: min(r.get("p99", float("inf")) for r in v)
                                                      for k, v in results["fixed_rate"].items()},
               f"median_round_p99_ms_at_{args.rate}_per_second": {
                   k: sorted(r.get("p99", float("inf")) for r in v)[len(v) // 2] for k, v in results["fixed_rate"].items()},
               # every round's p99 with the longest stall the probe saw in that round, for each server
               "rounds_p99_ms_and_machine_stall_ms": {
                   k: [(r.get("p99"), r["machine_stalls"]["late_max_ms"]) for r in v]
                   for k, v in results["fixed_rate"].items()}}
    # The goal measured against the machine: of a server's rounds in which the trivial responder, asked
    # in the same seconds, held p99 <= 2 ms itself (the machine allowed it), in how many did the server.
    def held(p99: float | None) -> bool:
        return p99 is not None and p99 <= GOAL_P99_MS
    summary["held_goal_where_floor_held_it"] = {
        k: f"{sum(1 for r in v if held(r['floor_p99_same_seconds']) and held(r.get('p99')))} of "
           f"{sum(1 for r in v if held(r['floor_p99_same_seconds']))} rounds"
        for k, v in results["fixed_rate"].items() if k != FLOOR and v and "floor_p99_same_seconds" in v[0]}
    print(json.dumps(summary, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.node(),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {"services": args.services, "seconds": args.seconds, "rounds": args.rounds, "rate": args.rate,
                     "latency_seconds": args.latency_seconds, "warmup": args.warmup,
                     "realtime": args.realtime, "one_at_a_time": args.one_at_a_time},
        "summary": summary, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
