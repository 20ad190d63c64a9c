"""Kill a run anywhere, run it again, and check that nothing was lost (issue #29).

For each run (the demo, and a small own-data sid run) it first runs once uninterrupted,
recording every file or folder the run commits (each ``os.replace`` into its model_dir),
then, for each kill point, starts the same command in a new folder, SIGKILLs it there,
starts it again until it finishes, and compares the finished folder with the
uninterrupted one:

- dev scores of teacher and student, the stages, the dev history, the best epoch and the
  per-epoch training history (1e-6);
- every weight of the student and of the teacher (1e-6);
- exactly the uninterrupted run's export versions (one per format) and files;
- no temporary or partial file (files.is_temporary), no backup, no lock holder left.

Kill points:

- ``before:N`` / ``after:N``: inside the N-th commit of the run: its file or folder is
  written whole beside its target and the process dies just before the rename that
  commits it, or just after (so the next step never ran).  They are chosen over every
  kind of write: tokenize cache, teacher backups, the teacher, teacher-logit cache,
  distillation backups in each stage, the student, records, each export format, results.
- ``time:F``: at fraction F of the uninterrupted run's wall time, three times in a row
  (each rerun is killed again at the same moment of its own life), then run to the end.
- ``full:N`` (``--disk_full``): the N-th commit finds the disk full (OSError ENOSPC, as
  the last write of a file would): the run must stop with one ``error: no space left``
  line and exit 2, leaving no temporary or partial file (checked before any rerun), and
  the rerun after space is freed must end as the uninterrupted run.  One point per kind
  of write, at its first commit.

    python scripts/fault_injection.py                      # both runs, every kill point
    python scripts/fault_injection.py --runs=own_sid --reduced   # what CI runs
    python scripts/fault_injection.py --runs=own_sid --disk_full # a full disk instead

It prints a table (where each kill landed, how many kills, what was compared, the
result) and writes it to --table (Markdown).  Exit 1 when a kill point lost something.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

from kd_keras import files  # noqa: E402  (no TensorFlow: files imports numpy only)
import make_example_data  # noqa: E402

# A small own-data sid run: tiny teacher fine-tuned 2 epochs, 3 sid stages, backups every
# 3 steps, exported as a SavedModel and ONNX (two formats: a kill between their commits).
OWN_SID = ["--teacher=tiny", "--tiny_layers=4", "--tiny_hidden_size=48", "--tiny_heads=3",
           "--teacher_epochs=2", "--student_layers=2", "--epochs=1", "--epochs_per_stage=1",
           "--max_seq_length=32", "--batch_size=16", "--checkpoint_steps=3",
           "--schedule=sid", "--speed_seconds=0", "--export_formats=saved_model,onnx"]


def run_flags(name: str, data_dir: str) -> List[str]:
    """The command-line flags of a named run (its model_dir added by the caller)."""
    if name == "demo":
        return ["--speed_seconds=0"]  # python -m kd_keras.main alone, but for the timing
    make_example_data.write_example(data_dir, train_size=256, dev_size=64)
    return [f"--train_file={data_dir}/train.csv", f"--dev_file={data_dir}/dev.csv",
            "--text_fields=review", "--label_field=sentiment", *OWN_SID]


# ---------------------------------------------------------------- the child process

def child(kill: str, trace: str, model_dir: str, flags: Sequence[str]) -> None:
    """Runs kd_keras.main in this process with os.replace watched: every commit into
    model_dir is appended to ``trace`` (its path in model_dir); ``kill`` says at which
    commit this process SIGKILLs itself: "before:N" or "after:N" (the N-th commit),
    "before:N:REGEX" (the N-th whose path matches REGEX), or "none"; "full:N[:REGEX]"
    makes that commit fail as on a full disk instead."""
    import runpy

    when, count, pattern = (kill.split(":", 2) + ["", ""])[:3]
    root = os.path.abspath(model_dir)
    replace = os.replace
    seen = [0]

    def watched_replace(source, target, *args, **kwargs):
        target_path = os.path.abspath(os.fsdecode(target))
        if not target_path.startswith(root + os.sep):
            return replace(source, target, *args, **kwargs)
        path = os.path.relpath(target_path, root)
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(path + "\n")
        seen[0] += bool(re.search(pattern, path))
        here = seen[0] == int(count or 0)
        if when == "before" and here:
            os.kill(os.getpid(), signal.SIGKILL)
        if when == "full" and here:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target_path)
        result = replace(source, target, *args, **kwargs)
        if when == "after" and here:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = watched_replace
    sys.argv = ["kd_keras.main", *flags, f"--model_dir={model_dir}"]
    runpy.run_module("kd_keras.main", run_name="__main__", alter_sys=True)


def start(model_dir: str, flags: Sequence[str], kill: str = "none",
          log_name: str = "run") -> Tuple[subprocess.Popen, str, str]:
    """Starts one run as a child process; returns (process, its log path, its trace)."""
    base = os.path.dirname(model_dir)
    log = os.path.join(base, f"{os.path.basename(model_dir)}.{log_name}.log")
    trace = os.path.join(base, f"{os.path.basename(model_dir)}.{log_name}.trace")
    open(trace, "w").close()
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", kill, "--trace", trace,
             "--model_dir", model_dir, "--", *flags],
            cwd=REPO, stdout=handle, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", KERAS_BACKEND="tensorflow"))
    return process, log, trace


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def run_to_end(model_dir: str, flags: Sequence[str], log_name: str) -> Tuple[str, float]:
    """Runs to the end; returns (its log, seconds).  Raises when it fails."""
    started = time.time()
    process, log, _ = start(model_dir, flags, log_name=log_name)
    if process.wait(timeout=3600) != 0:
        raise RuntimeError(f"{model_dir}: the run failed (exit {process.returncode}):\n"
                           + read(log)[-3000:])
    return read(log), time.time() - started


# ---------------------------------------------------------------- where writes land

WRITE_KINDS = [  # (pattern on the committed path, what it is), first match wins
    (r"^cache/.*features", "tokenize cache"),
    (r"^cache/.*logits", "teacher-logit cache"),
    (r"^cache/", "cache"),
    (r"^backup/(\.tmp_)?teacher", "teacher backup"),
    (r"^backup/(\.tmp_)?distill", "distillation backup"),
    (r"^\.tmp_(teacher|student)_", "{0} saved"),
    (r"^\.(teacher|student)\.replaced$", "{0} moved aside for a better one"),
    (r"^teacher/", "teacher marker"),
    (r"^teacher$", "teacher saved"),
    (r"^student$", "student saved"),
    (r"^export/(\d+)$", "export saved_model"),
    (r"^export/\.tmp_", "export saved_model"),
    (r"^export/([a-z0-9_]+)/(\d+$|\.tmp_)", "export {0}"),
    (r"^distilled\.json$", "distillation record"),
    (r"^results\.json$", "results.json"),
    (r"^dev_predictions\.npz$", "dev predictions"),
    (r"^run_identity\.json$", "run identity"),
    (r"^config\.json$", "config.json"),
    (r"^\.kd_keras\.lock$", "lock holder"),
]


def kind_of(path: str) -> str:
    for pattern, label in WRITE_KINDS:
        match = re.search(pattern, path)
        if match:
            return label.format(*match.groups())
    return path


def stage_of(log_lines: List[str]) -> str:
    """The run's phase at the end of a log: the last phase line it printed."""
    phases = [line for line in log_lines if re.match(
        r"^(Fine-tuning the teacher|Stage \d+/\d+|Distilling|Exported|Results|"
        r"Tokeniz|Teacher logits|Resuming|The student in|Best student|Student )", line)]
    return phases[-1].split(":")[0].split(" (")[0][:40] if phases else "start-up"


DISTILL_BACKUP = r"^backup/distill$"


def chain(commits: List[str]) -> Tuple[str, str]:
    """Five kills in a row in one folder, each inside a write (each rerun counts its own
    commits): the tokenize cache; the distillation backup halfway through the run's
    backups; the distillation record, once training is over and its last backup kept;
    between two export formats' commits; results.json.  Returns (kill spec, where)."""
    backups = sum(bool(re.search(DISTILL_BACKUP, path)) for path in commits)
    middle = max(1, backups // 2)
    kills = [("before:1:^cache/features", "before the tokenize cache's commit"),
             (f"before:{middle}:{DISTILL_BACKUP}",
              f"before the distillation backup {middle} of {backups}'s commit"),
             ("before:1:^distilled\\.json$", "before the distillation record's commit "
              "(training over, its last backup kept)"),
             ("after:1:^export/(\\w+/)?\\d+$", "after the first export format's commit"),
             ("before:1:^results\\.json$", "before results.json's commit")]
    return (",".join(spec for spec, _ in kills),
            "chain: " + "; ".join(where for _, where in kills))


def disk_full_points(commits: List[str]) -> List[Tuple[str, str]]:
    """A full disk at the first commit of every kind of write but the lock holder's name
    (written beside the lock, which holds whether or not the name is)."""
    first: Dict[str, int] = {}
    for index, path in enumerate(commits, start=1):
        first.setdefault(kind_of(path), index)
    return [(f"full:{index}", f"disk full committing {kind} (commit {index}/{len(commits)})")
            for kind, index in first.items() if kind != "lock holder"]


def choose_points(commits: List[str], reduced: bool,
                  max_points: Optional[int] = None) -> List[Tuple[str, str]]:
    """Kill points: (kill spec, where it lands); a spec of several kills, comma-separated,
    kills the same folder's run and reruns in turn.

    Reduced (CI): one chain of five kills inside writes (``chain``).  Otherwise also, for
    every kind of write, just before its first commit and just after its last, and
    before every eighth backup (with ``max_points``, only as many of those as keep the
    total at most that, or 4, spread evenly).
    """
    if reduced:
        return [chain(commits)]
    by_kind: Dict[str, List[int]] = {}
    for index, path in enumerate(commits, start=1):
        by_kind.setdefault(kind_of(path), []).append(index)
    picks, backups = [], []
    for kind, found in by_kind.items():
        if kind == "lock holder":
            continue
        picks += [("before", found[0]), ("after", found[-1])]
        if kind.endswith("backup"):
            backups += [("before", i) for i in found[8::8]]
    if max_points:  # every kind's points, and backups spread evenly over the rest
        room = max(max_points - len(set(picks)), 4)
        if len(backups) > room:
            backups = [backups[round(i * (len(backups) - 1) / (room - 1))]
                       for i in range(room)]
    points = sorted(set(picks + backups), key=lambda p: (p[1], p[0]))
    return [(f"{when}:{index}", f"{when} committing {kind_of(commits[index - 1])} "
             f"(commit {index}/{len(commits)})") for when, index in points] + [chain(commits)]


# ---------------------------------------------------------------- comparing

def student_and_teacher(model_dir: str) -> Dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    weights = {}
    for model in ("student", "teacher"):
        path = os.path.join(model_dir, model, "model.safetensors")
        weights.update({f"{model}/{k}": v for k, v in load_file(path).items()})
    return weights


def listing(model_dir: str, under: str) -> List[str]:
    root = os.path.join(model_dir, under)
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def compare(reference: str, model_dir: str) -> List[str]:
    """What differs between a finished folder and the uninterrupted one ([] when
    nothing), and what is left over that should not be."""
    problems = []
    want = json.loads(read(os.path.join(reference, "results.json")))
    got = json.loads(read(os.path.join(model_dir, "results.json")))
    for key in ("teacher", "student", "stages", "dev_history", "best_epoch", "history",
                "exports"):
        a, b = want.get(key), got.get(key)
        if key == "exports":  # where in its folder (a copied folder keeps the old paths)
            a = {k: v[v.rindex("/export/") + 1:] for k, v in (a or {}).items()}
            b = {k: v[v.rindex("/export/") + 1:] for k, v in (b or {}).items()}
        if key in ("teacher", "student"):
            a, b = (a or {}).get("dev"), (b or {}).get("dev")
        if not close(a, b):
            problems.append(f"results.json {key} differs")
    have, expected = student_and_teacher(model_dir), student_and_teacher(reference)
    if have.keys() != expected.keys():
        problems.append("weight names differ")
    else:
        worst = max(float(np.max(np.abs(have[k] - expected[k]))) for k in expected)
        if worst > 1e-6:
            problems.append(f"weights differ by {worst:.2e}")
    if listing(model_dir, "export") != listing(reference, "export"):
        problems.append(f"exports differ: {listing(model_dir, 'export')}")
    left = [os.path.relpath(os.path.join(folder, name), model_dir)
            for folder, subfolders, names in os.walk(model_dir)
            for name in subfolders + names
            if files.is_temporary(name) or name in ("backup", ".kd_keras.lock")
            or name.endswith(".next")]
    if left:
        problems.append(f"left over: {', '.join(sorted(left)[:3])}")
    return problems


def partial_files(model_dir: str) -> List[str]:
    """Temporary or partial files and folders in model_dir (none may outlive a write)."""
    return sorted(os.path.relpath(os.path.join(folder, name), model_dir)
                  for folder, subfolders, names in os.walk(model_dir)
                  for name in subfolders + names
                  if files.is_temporary(name) or name.endswith(".next"))


def close(a, b) -> bool:
    """Equal, floats to 1e-6 (JSON trees)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and abs(a - b) <= 1e-6
    return a == b


# ---------------------------------------------------------------- a campaign

def kill_at_commits(model_dir: str, flags: Sequence[str], specs: str
                    ) -> Tuple[int, str, List[str]]:
    """Runs until each commit the comma-separated ``specs`` name in turn (one run per
    spec, each dying there, or stopping on a full disk); returns (kills, the phases they
    landed in, what went wrong: a point never reached, a full disk's output)."""
    phases, problems = [], []
    for attempt, spec in enumerate(specs.split(",")):
        process, log, _ = start(model_dir, flags, kill=spec, log_name=f"killed{attempt}")
        code = process.wait(timeout=3600)
        full = spec.startswith("full:")
        lines = read(log).splitlines()
        if code != (2 if full else -signal.SIGKILL):  # the point was never reached
            problems.append(f"{spec} not reached (exit {code}): {lines[-1:]}")
            break
        phases.append(stage_of(lines))
        if full:
            errors = [line for line in lines if line.startswith("error: ")]
            if len(errors) != 1 or "no space left on the disk writing" not in errors[0]:
                problems.append(f"not one disk-full line: {errors[:2]}")
            left = partial_files(model_dir)
            if left:
                problems.append(f"a full disk left {', '.join(left[:3])}")
    return len(phases), "; ".join(phases), problems


def kill_at_time(model_dir: str, flags: Sequence[str], seconds: float,
                 times: int = 3) -> Tuple[int, str]:
    """Kills the run ``seconds`` into its life, ``times`` times in a row (each rerun at
    the same moment of its own life); returns (kills, the phases they landed in)."""
    phases, kills = [], 0
    for attempt in range(times):
        process, log, _ = start(model_dir, flags, log_name=f"timed{attempt}")
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            phases.append(stage_of(read(log).splitlines()))
            continue
        break  # it finished before the moment came
    return kills, "; ".join(dict.fromkeys(phases)) or "finished first"


def campaign(name: str, work: str, reduced: bool, fractions: Sequence[float],
             max_points: Optional[int] = None, disk_full: bool = False) -> List[Dict]:
    """Every kill point (or with ``disk_full``, every full-disk point) of one named run;
    returns the table's rows."""
    flags = run_flags(name, os.path.join(work, f"{name}_data"))
    reference = os.path.join(work, f"{name}_uninterrupted")
    _, seconds = run_to_end(reference, flags, "run")
    commits = read(f"{reference}.run.trace").split()
    print(f"{name}: uninterrupted in {seconds:.0f} s, {len(commits)} commits", flush=True)
    if disk_full:
        points, fractions = disk_full_points(commits), []
    else:
        points = choose_points(commits, reduced, max_points)
    if not reduced:
        points += [(f"time:{f}", f"at {f:.0%} of the run's time, 3 times") for f in fractions]
    rows = []
    for index, (spec, where) in enumerate(points):
        folder = os.path.join(work, f"{name}_{index}")
        stopped: List[str] = []
        if spec.startswith("time:"):
            kills, phase = kill_at_time(folder, flags, float(spec[5:]) * seconds)
        else:
            kills, phase, stopped = kill_at_commits(folder, flags, spec)
        output, _ = run_to_end(folder, flags, "rerun")
        problems = stopped + compare(reference, folder)
        cleaned = sum(line.startswith("Cleaned up after an interrupted write")
                      for line in output.splitlines())
        rows.append({"run": name, "kill": spec, "where": where, "phase": phase,
                     "kills": kills, "cleaned": cleaned,
                     "result": "; ".join(problems) or "nothing lost"})
        print(f"  {spec:<12} {where:<58} {phase:<28} kills {kills} -> {rows[-1]['result']}",
              flush=True)
        if not problems:
            shutil.rmtree(folder)
    return rows


COMPARED = ("dev scores (teacher, student), stages, dev history, best epoch, training "
            "history, student and teacher weights (1e-6), export versions and files; no "
            "temporary file, backup or lock left")


def table(rows: List[Dict]) -> str:
    lines = ["| run | kill | where | phase when killed | kills | temporaries cleaned | "
             "result |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['kill']} | {r['where']} | {r['phase']} | {r['kills']} | "
              f"{r['cleaned']} | {r['result']} |" for r in rows]
    ok = sum(r["result"] == "nothing lost" for r in rows)
    lines += ["", f"{ok} of {len(rows)} kill points lost nothing. Compared with the "
                  f"uninterrupted run: {COMPARED}."]
    if any(r["kill"].startswith("full:") for r in rows):
        lines[-1] += (" A full disk (full:N): the run stopped with exit 2 and one "
                      "\"error: no space left on the disk writing ...\" line, no temporary "
                      "or partial file left before the rerun.")
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="demo,own_sid", help="demo, own_sid")
    parser.add_argument("--reduced", action="store_true",
                        help="one chain of five kills a run, inside writes (what CI runs)")
    parser.add_argument("--disk_full", action="store_true",
                        help="a full disk at the first commit of every kind of write, "
                             "instead of kills")
    parser.add_argument("--fractions", default="0.1,0.3,0.5,0.7,0.9",
                        help="time kills, as fractions of the uninterrupted run's time")
    parser.add_argument("--max_points", type=int,
                        help="at most this many kill points at commits a run")
    parser.add_argument("--work_dir", help="where the runs go (a new temporary folder)")
    parser.add_argument("--table", help="write the Markdown table here too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--trace", help=argparse.SUPPRESS)
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)
    parser.add_argument("flags", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.trace, args.model_dir, args.flags)
        return 0
    work = args.work_dir or tempfile.mkdtemp(prefix="kd_keras_faults_")
    fractions = [float(f) for f in args.fractions.split(",") if f]
    rows = []
    for name in args.runs.split(","):
        rows += campaign(name, work, args.reduced, fractions, args.max_points,
                         args.disk_full)
    text = table(rows)
    print("\n" + text)
    if args.table:
        files.write_text(args.table, text)
    failed = [r for r in rows if r["result"] != "nothing lost"]
    print(f"Runs in {work}" + (" (the failed ones kept)." if failed else "."))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
