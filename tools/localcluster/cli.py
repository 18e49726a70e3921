"""``python -m localcluster up|down|env|status``: a background control plane for local runs.

Why a CLI: developers (and ``make cluster-up``) want a cluster that outlives one command, to point
kubectl, helm or the operator at.  ``up`` starts the components detached (own sessions), records
them in the well-known run dir and prints ``export KUBECONFIG=...``; pytest fixtures reuse it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from . import state
from .binaries import discover
from .cluster import Cluster
from .controlplane import MODE_APISERVER, MODE_FULL, LocalCluster
from .errors import ClusterUnavailable
from .existing import recorded_cluster, stop_recorded


def _exports(cluster: Cluster) -> str:
    lines = [f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}"]
    if cluster.bin_dir:
        lines.append(f"export ITL_K8S_BIN_DIR={shlex.quote(str(cluster.bin_dir))}")
        lines.append(f'export PATH={shlex.quote(str(cluster.bin_dir))}:"$PATH"')
    return "\n".join(lines)


def cmd_up(args: argparse.Namespace) -> int:
    run_dir: Path = args.dir
    mode = MODE_APISERVER if args.apiserver_only else MODE_FULL
    running = recorded_cluster(run_dir)
    if running is not None:
        if running.mode == mode or running.mode == MODE_FULL:
            print(f"# cluster already running ({running.mode}) in {run_dir}", file=sys.stderr)
            print(_exports(running))
            return 0
        print(f"# replacing the running {running.mode} cluster with a {mode} one", file=sys.stderr)
    stop_recorded(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    local = LocalCluster(run_dir, mode=mode, binaries=discover(), keep_run_dir=True)
    try:
        cluster = local.start()
    except ClusterUnavailable as exc:
        print(f"localcluster up failed: {exc}\n(logs kept in {run_dir / 'logs'})", file=sys.stderr)
        return 1
    print(
        f"# {mode} control plane ready in {cluster.startup_seconds:.1f}s at {cluster.server}\n"
        f"# run dir {run_dir}; logs in {run_dir / 'logs'}; stop with `python -m localcluster down`",
        file=sys.stderr,
    )
    print(_exports(cluster))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    stopped = stop_recorded(args.dir)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    print(f"# stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    cluster = recorded_cluster(args.dir)
    if cluster is None:
        print("# no running cluster; start one with `python -m localcluster up`", file=sys.stderr)
        return 1
    print(_exports(cluster))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cluster = recorded_cluster(args.dir)
    if cluster is None:
        print("not running")
        return 1
    rss = cluster.rss_kib()
    print(f"{cluster.mode} cluster at {cluster.server}, run dir {cluster.run_dir}")
    for name, kib in rss.items():
        print(f"  {name:<24} pid {cluster.pids[name]:<8} rss {kib / 1024:7.1f} MiB")
    print(f"  {'total':<24} {'':<12} rss {sum(rss.values()) / 1024:7.1f} MiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=state.default_run_dir(), help="run dir (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane in the background")
    up.add_argument("--apiserver-only", action="store_true", help="etcd + kube-apiserver only")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop it and remove its run dir")
    down.add_argument("--keep", action="store_true", help="keep the run dir (logs)")
    down.set_defaults(func=cmd_down)
    sub.add_parser("env", help="print shell exports for the running cluster").set_defaults(
        func=cmd_env
    )
    sub.add_parser("status", help="show components and their memory").set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
