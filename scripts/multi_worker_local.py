"""Runs a tiny kd_keras job with MultiWorkerMirroredStrategy on two local worker processes.

Each worker gets its own TF_CONFIG (same cluster, its own task index) and runs the same
command, as on a real cluster; the chief (worker 0) writes model_dir, the other worker
writes to model_dir/workers/.  The script checks that both finish with exit code 0 and
that the chief wrote results.json and an export.

    python scripts/multi_worker_local.py [--model_dir=/tmp/kd_multi_worker] [-- extra flags]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_JOB = ["--task=synthetic", "--teacher=tiny", "--tiny_layers=2", "--tiny_hidden_size=32",
            "--tiny_heads=2", "--teacher_epochs=1", "--student_layers=1", "--schedule=sid",
            "--epochs=1", "--epochs_per_stage=1", "--synthetic_size=256",
            "--max_seq_length=32", "--batch_size=32", "--speed_seconds=0"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(flags: list, model_dir: str, log_dir: str, count: int = 2):
    """Starts ``count`` workers of one MultiWorkerMirroredStrategy job on local ports.

    Args:
        flags: kd_keras flags for every worker (the strategy and model_dir are added).
        model_dir: the job's --model_dir (the chief's).
        log_dir: where each worker's output goes (worker_<i>.log).

    Returns:
        (processes, open log files, log paths), one each per worker, worker 0 first.
    """
    workers = [f"localhost:{port}" for port in free_ports(count)]
    processes, logs, log_paths = [], [], []
    for index in range(count):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), PYTHONUNBUFFERED="1")
        log_paths.append(os.path.join(log_dir, f"worker_{index}.log"))
        logs.append(open(log_paths[-1], "w"))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "kd_keras.main", *flags,
             "--distribution_strategy=multi_worker_mirrored", f"--model_dir={model_dir}"],
            cwd=REPO, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    return processes, logs, log_paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="/tmp/kd_multi_worker")
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("extra", nargs="*", help="more kd_keras flags, after --")
    args = parser.parse_args()
    log_dir = tempfile.mkdtemp(prefix="kd_multi_worker_")
    processes, logs, log_paths = start_workers(TINY_JOB + args.extra, args.model_dir, log_dir)
    started = time.time()
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1, args.timeout - (time.time() - started))))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append("timeout")
    for log in logs:
        log.close()
    results = os.path.join(args.model_dir, "results.json")
    ok = codes == [0, 0] and os.path.exists(results)
    for index, code in enumerate(codes):
        print(f"worker {index}: exit {code}, log {log_paths[index]}")
        if code != 0:
            with open(log_paths[index]) as handle:
                print("".join(handle.readlines()[-25:]))
    if ok:
        with open(results) as handle:
            report = json.load(handle)
        print(f"chief results: student dev {report['student']['dev']}, stages "
              f"{[s['stage'] for s in report['stages']]}, export {report.get('export')}")
    print(f"{'OK' if ok else 'FAILED'}: two workers in {time.time() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
