"""`python -m bench [options]` (or `make bench BENCH_ARGS=...`): measure, print a table, write bench/results/*.json."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import traceback

from harness.net import free_port

from . import report
from .paths import Loopback, Postfix
from .postfix import Unavailable
from .runner import Load, measure, soak

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PATHS = ("loopback", "postfix", "mailferry", "mailferry-auth")
AUTH_SIZE = 4096  # the authentication + rspamd row: 4 KB only, on the first --db


def parse_size(raw: str) -> int:
    raw = raw.strip().lower()
    scale = 1024 if raw.endswith("k") else 1
    return int(float(raw.rstrip("k")) * scale)


DEFAULT_WORKERS = {"sqlite": 2, "postgresql": 3}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--messages", type=int, default=5000,
                   help="messages per throughput run (smtp-source); 5,000 make runs of about a minute")
    p.add_argument("--latency-messages", type=int, default=0, help="messages per latency run (default: half --messages, at most 1,000)")
    p.add_argument("--concurrency", type=int, default=100, help="concurrent SMTP connections of the load")
    p.add_argument("--sizes", default="4k,100k", help="message sizes, comma-separated (e.g. 4k,100k)")
    p.add_argument("--paths", default=",".join(PATHS),
                   help="which paths to measure: loopback,postfix,mailferry,mailferry-auth (the last: Mailferry with "
                        "inbound authentication and rspamd on, 4 KB, the first --db; 'mailferry' has both off)")
    p.add_argument("--db", default="sqlite", help="Mailferry databases: sqlite,postgresql")
    p.add_argument("--workers", type=int, default=0,
                   help="Mailferry worker processes (default: 2 on SQLite, whose one writer at a time more workers "
                        "only queue behind, 3 on PostgreSQL)")
    p.add_argument("--smtp-processes", type=int, default=2, help="Mailferry SMTP_SERVER_PROCESSES")
    p.add_argument("--recipients", type=int, default=10, help="aliases the load generator spreads messages over")
    p.add_argument("--dkim", default="rsa", choices=("rsa", "ed25519"), help="DKIM key algorithm of the alias domain")
    p.add_argument("--paced-seconds", type=float, default=3.0, help="length of the paced latency run (0: skip)")
    p.add_argument("--pace", type=float, default=0.5, help="paced run offers this fraction of the measured e2e rate")
    p.add_argument("--idle", type=int, default=1000, help="idle connections for the RSS test (0: skip)")
    p.add_argument("--soak", type=float, default=0.0, help="seconds of paced load sampling the SMTP server's RSS (0: skip)")
    p.add_argument("--soak-rate", type=float, default=0.0, help="soak rate in msg/s (default: --pace of the measured e2e rate)")
    p.add_argument("--reuse", action="store_true", help="several messages per connection (default: one per connection)")
    p.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the last arrivals")
    p.add_argument("--profile", action="store_true", help="py-spy the Mailferry processes during the throughput run")
    p.add_argument("--out", default=RESULTS, help="directory of the JSON results")
    return p.parse_args(argv)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "loadavg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def build_paths(args: argparse.Namespace, workdir: str, sink_port: int) -> list:
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(wanted) - set(PATHS)
    if unknown:
        raise SystemExit(f"unknown path(s): {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}")
    paths = []
    if "loopback" in wanted:
        paths.append(Loopback(sink_port, args.recipients))
    if "postfix" in wanted:
        paths.append(Postfix(sink_port, args.recipients, workdir, free_port()))
    if "mailferry" in wanted:
        from .mailferry import Mailferry

        for db in (d.strip() for d in args.db.split(",") if d.strip()):
            paths.append(Mailferry(sink_port, args.recipients, workdir, db=db, workers=args.workers or DEFAULT_WORKERS.get(db, 2),
                                   smtp_processes=args.smtp_processes, dkim=args.dkim))
    if "mailferry-auth" in wanted:
        from .mailferry import Mailferry

        db = next(d.strip() for d in args.db.split(",") if d.strip())
        paths.append(Mailferry(sink_port, args.recipients, workdir, db=db, workers=args.workers or DEFAULT_WORKERS.get(db, 2),
                               smtp_processes=args.smtp_processes, dkim=args.dkim, authenticated=True))
    return paths


def run(args: argparse.Namespace) -> dict:
    raise_fd_limit(args.idle * 2 + 4096)
    result = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "params": {k: v for k, v in vars(args).items() if k != "out"}, "runs": [], "idle": None, "soak": None,
              "profiles": {}, "errors": [], "skipped": []}
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    workdir = tempfile.mkdtemp(prefix="mailferry-bench-")
    started = time.monotonic()
    try:
        sink_port = free_port()
        for path in build_paths(args, workdir, sink_port):
            try:
                path.start()
            except Unavailable as exc:
                result["skipped"].append(f"{path.name}: {exc}")
                continue
            except Exception as exc:  # a path that cannot start is reported, the others still run
                result["errors"].append(f"{path.name}: cannot start: {exc}")
                path.stop()
                continue
            try:
                for size in ([AUTH_SIZE] if getattr(path, "authenticated", False) else sizes):
                    load = Load(args.messages, args.concurrency, size, args.latency_messages or min(1000, max(1, args.messages // 2)),
                                args.paced_seconds, args.pace, args.reuse, args.drain_timeout)
                    if args.profile:
                        path.start_profile(f"{path.name}-{size // 1024}k")
                    result["runs"].append(measure(path, load, workdir))
                    if args.profile and (profile := path.stop_profile()):
                        result["profiles"][f"{path.name}-{size // 1024}k"] = profile
                if args.idle and hasattr(path, "idle_rss") and result["idle"] is None:
                    result["idle"] = path.idle_rss(args.idle)
                if args.soak and path.smtp_pids() and result["soak"] is None:
                    rate = args.soak_rate or args.pace * result["runs"][-1]["throughput"]["e2e_per_s"]
                    result["soak"] = soak(path, args.soak, max(rate, 1.0), load, workdir)
            except Exception as exc:
                result["errors"].append(f"{path.name}: {exc}")
                traceback.print_exc(file=sys.stderr)
            finally:
                path.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.add_ratios(result["runs"])
    result["authentication"] = report.authentication(result["runs"])
    result["targets"] = report.targets(result["runs"], result["idle"], result["soak"])
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    path = report.write_json(result, args.out)
    print(report.table(result))
    print(f"\n{result['seconds']} s; JSON: {path}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
