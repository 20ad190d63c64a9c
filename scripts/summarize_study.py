"""Turns the runs of scripts/reproduce.sh into study tables (markdown) and a figure.

    python scripts/summarize_study.py runs/study [--sweep_task=mrpc]

Reads <out>/<task>/<method>_L<layers>_s<seed>/{results.json,dev_predictions.npz} and
writes <out>/study_tables.md and <out>/student_depth.png.  Every method is compared to
standard KD with a paired bootstrap over dev examples: each resample draws dev examples
with replacement, scores every seed's predictions of both methods on it and takes the
difference of the seed means; the 2.5th and 97.5th percentiles bound the 95% interval.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kd_keras import metrics as glue_metrics  # noqa: E402  (numpy only)
from kd_keras.tasks import get_task  # noqa: E402

METHOD_NAMES = {"finetune": "student fine-tuned alone", "kd": "standard KD",
                "all": "internal KD, all layers at once", "pid": "internal KD, pid",
                "sid": "internal KD, sid", "sid_kd": "internal KD, sid + soft labels every stage",
                "sid_mse": "internal KD, sid + hidden-state MSE",
                "sid_long": "internal KD, sid + a classifier stage twice as long",
                "kd_long": "standard KD, as many epochs as sid's longer classifier stage"}
# "<method>_aug": the method with the task's text without labels (scripts/reproduce.sh);
# finetune learns from labels alone, so its copies carry their example's label.
METHOD_NAMES.update({f"{method}_aug": f"{name} + added text"
                     for method, name in list(METHOD_NAMES.items()) if method != "finetune"})
METHOD_NAMES["finetune_aug"] = "student fine-tuned alone + labelled copies"


def task_spec(folder_name: str):
    """The task of a study folder: "mrpc", or "mrpc-500" (MRPC with 500 labels)."""
    return get_task(re.sub(r"-\d+$", "", folder_name))


RUN_NAME = re.compile(r"^(?P<method>[a-z_]+)_L(?P<layers>\d+)_s(?P<seed>\d+)$")


def load_runs(task_dir: str) -> List[Dict]:
    runs = []
    for folder in sorted(glob.glob(os.path.join(task_dir, "*_L*_s*"))):
        match = RUN_NAME.match(os.path.basename(folder))
        results = os.path.join(folder, "results.json")
        if not match or not os.path.exists(results):
            continue
        if match["method"] not in METHOD_NAMES:  # a table row needs a name
            print(f"{folder}: method '{match['method']}' has no name in METHOD_NAMES; left "
                  "out of the tables.", file=sys.stderr)
            continue
        with open(results) as handle:
            report = json.load(handle)
        with np.load(os.path.join(folder, "dev_predictions.npz")) as stored:
            predictions = {k: stored[k] for k in stored.files}
        runs.append(dict(method=match["method"], layers=int(match["layers"]),
                         seed=int(match["seed"]), results=report, **predictions))
    return runs


def other_teacher_runs(runs: List[Dict]) -> List[str]:
    """Runs whose teacher's dev logits differ from the first run's: another teacher.

    A task's runs are only comparable when they distilled the same fine-tuned teacher
    (a lost run folder means fine-tuning it again, which need not give the same weights).
    One teacher's logits still differ by bfloat16 rounding between code versions (up to
    0.004 when the encoders' GELU moved from erfc to erf); another teacher's differ by
    tenths.
    """
    reference = runs[0]["teacher_logits"]
    return [f"{r['method']}_L{r['layers']}_s{r['seed']}" for r in runs
            if not np.allclose(r["teacher_logits"], reference, atol=0.02)]


def teacher_line(task_dir: str, main: str) -> List[str]:
    """The teacher's dev score by fine-tuning epoch, from its kd_keras_task.json."""
    path = os.path.join(task_dir, "teacher", "teacher", "kd_keras_task.json")
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        marker = json.load(handle)
    history = marker.get("dev_history") or []
    if not history:
        return []
    scores = ", ".join(f"{100 * h[main]:.1f}" for h in history)
    return [f"Teacher fine-tuning, dev {main} by epoch: {scores} (kept: epoch "
            f"{marker['dev']['epoch']}).", ""]


def score(metric_names, labels, logits) -> Dict[str, float]:
    return glue_metrics.compute(metric_names, labels, logits, regression=False)


def reported_metrics(spec) -> List[str]:
    """The task's metrics shown in the tables: accuracy and F1 where GLUE reports them."""
    return [m for m in spec.metrics if m in ("accuracy", "f1")] or list(spec.metrics)


def majority_scores(metric_names, labels, num_labels: int) -> Dict[str, float]:
    """Scores of always predicting the most frequent dev label."""
    majority = np.bincount(labels.astype(int)).argmax()
    return score(metric_names, labels, np.eye(num_labels)[np.full(len(labels), majority)])


def bootstrap_difference(metric: str, metric_names, labels, method_runs, baseline_runs,
                         samples: int = 2000, seed: int = 0):
    """95% interval of mean(metric of method) - mean(metric of baseline) over seeds."""
    rng = np.random.RandomState(seed)
    n = len(labels)
    differences = []
    for _ in range(samples):
        index = rng.randint(0, n, size=n)
        ours = np.mean([score(metric_names, labels[index], r["student_logits"][index])[metric]
                        for r in method_runs])
        theirs = np.mean([score(metric_names, labels[index],
                                r["student_logits"][index])[metric] for r in baseline_runs])
        differences.append(ours - theirs)
    return np.percentile(differences, [2.5, 97.5])


def mean_scores(metric_names, labels, runs) -> Dict[str, float]:
    """Each metric in points (x100), averaged over the runs' dev predictions."""
    return {m: np.mean([100 * score(metric_names, labels, r["student_logits"])[m]
                        for r in runs]) for m in metric_names}


def gap_to_kd(metric: str, metric_names, labels, method_runs, kd_runs, samples: int) -> str:
    """A table cell such as "+4.1 [+2.0, +6.0]": the method's mean ``metric`` minus standard
    KD's, in points, with its paired-bootstrap 95% interval."""
    low, high = bootstrap_difference(metric, metric_names, labels, method_runs, kd_runs,
                                     samples)
    gap = (mean_scores(metric_names, labels, method_runs)[metric]
           - mean_scores(metric_names, labels, kd_runs)[metric])
    return f"{gap:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def task_table(task: str, runs: List[Dict], layers: int, samples: int) -> List[str]:
    spec = task_spec(task)
    names = reported_metrics(spec)
    main = names[0]
    runs = [r for r in runs if r["layers"] == layers]
    if not runs:
        return []
    labels = runs[0]["labels"]
    first = runs[0]["results"]
    teacher = score(names, labels, runs[0]["teacher_logits"])
    baseline = majority_scores(names, labels, spec.num_labels)
    # Extra evaluation splits (MNLI's dev_mismatched): the main metric beside dev's.
    extra = [split for split, _, _ in spec.extra_dev if f"{split}_student_logits" in runs[0]]

    def split_score(run, split, logits_key):
        return 100 * score(names, run[f"{split}_labels"], run[f"{split}_{logits_key}"])[main]

    extra_teacher = "".join(f" | {split_score(runs[0], s, 'teacher_logits'):.1f}"
                            for s in extra)
    extra_majority = "".join(
        f" | {100 * majority_scores(names, runs[0][f'{s}_labels'], spec.num_labels)[main]:.1f}"
        for s in extra)

    header = "| method | seeds | " + " | ".join(f"dev {m}" for m in names) + \
        "".join(f" | {s} {main}" for s in extra) + \
        " | attention KL | " + f"{main} - standard KD [95% CI] |"
    lines = [f"### {task.upper()} ({len(labels)} dev examples), {layers}-layer student", "",
             header, "|" + "---|" * (len(names) + len(extra) + 4),
             "| majority class | | " + " | ".join(f"{100 * baseline[m]:.1f}" for m in names)
             + extra_majority + " | | |",
             f"| teacher ({first['teacher']['layers']} layers) | | "
             + " | ".join(f"{100 * teacher[m]:.1f}" for m in names)
             + extra_teacher + " | | |"]
    by_method = {}
    for run in runs:
        by_method.setdefault(run["method"], []).append(run)
    for method in METHOD_NAMES:
        group = by_method.get(method)
        if not group:
            continue
        values = {m: [100 * score(names, labels, r["student_logits"])[m] for r in group]
                  for m in names}
        # One seed has no spread to report.
        for split in extra:
            values[split] = [split_score(r, split, "student_logits") for r in group]
        cells = [f"{np.mean(v):.1f} ± {np.std(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"
                 for v in values.values()]
        kls = [r["results"]["student"].get("attention_kl_mean") for r in group]
        kl = f"{np.mean(kls):.3f}" if all(k is not None for k in kls) else ""
        # Methods with added text are compared with standard KD on the same text.
        reference = "kd_aug" if method.endswith("_aug") and "kd_aug" in by_method else "kd"
        interval = ""
        if method == reference:
            interval = "(reference)"
        elif reference in by_method:
            interval = gap_to_kd(main, names, labels, group, by_method[reference], samples)
        lines.append(f"| {METHOD_NAMES[method]} | {len(group)} | " + " | ".join(cells)
                     + f" | {kl} | {interval} |")
    student = first["student"]
    # Each run times teacher and student on dev; the median over runs damps the noise of
    # runs that shared the CPU with other work.
    speedups = [r["results"]["speedup"] for r in runs]
    spread = (f"median of {len(speedups)} runs, {min(speedups):.2f}-{max(speedups):.2f}x"
              if len(speedups) > 1 else "1 run")
    lines += ["", f"Parameters: teacher {first['teacher']['parameters']:,}, student "
              f"{student['parameters']:,}; student dev throughput "
              f"{np.median(speedups):.2f}x the teacher's on this CPU ({spread}).", ""]
    return lines


def depth_table(task: str, runs: List[Dict], samples: int) -> List[str]:
    """Markdown rows of the depth sweep: the swept methods' dev scores per student depth,
    and each method's difference to standard KD with its paired-bootstrap 95% interval."""
    spec = task_spec(task)
    names = reported_metrics(spec)
    main = names[-1]  # accuracy where the task reports it: F1's majority baseline is high
    depths = {}  # method -> layers -> runs
    for run in runs:
        depths.setdefault(run["method"], {}).setdefault(run["layers"], []).append(run)
    swept = [m for m in METHOD_NAMES if len(depths.get(m, {})) > 1]
    if "kd" not in swept or len(swept) < 2:
        return []
    labels = runs[0]["labels"]
    lines = [f"### {task.upper()} student depth sweep", "",
             "| student layers | " + " | ".join(
                 f"{METHOD_NAMES[m]} {' / '.join(names)} (seeds)" for m in swept)
             + " | " + " | ".join(f"{METHOD_NAMES[m]} - standard KD {main} [95% CI]"
                                  for m in swept if m != "kd") + " |",
             "|" + "---|" * (2 * len(swept))]
    for layers in sorted(depths["kd"]):
        groups = {m: depths[m].get(layers, []) for m in swept}
        cells = []
        for group in groups.values():
            means = mean_scores(names, labels, group) if group else {}
            cells.append(" / ".join(f"{means[m]:.1f}" for m in names) + f" ({len(group)})"
                         if group else "")
        gaps = [gap_to_kd(main, names, labels, groups[m], groups["kd"], samples)
                if groups[m] else "" for m in swept if m != "kd"]
        lines.append(f"| {layers} | " + " | ".join(cells + gaps) + " |")
    return lines + [""]


def depth_figure(runs: List[Dict], task: str, path: str) -> bool:
    """Dev metric vs student layers, one panel per metric, for the swept methods.

    A point is the mean over the seeds run at that depth (error bar: their std); the
    teacher and the majority class are drawn as horizontal lines for scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = task_spec(task)
    names = reported_metrics(spec)
    points = {}  # method -> student layers -> list of {metric: dev score} over seeds
    for run in runs:
        values = score(names, run["labels"], run["student_logits"])
        points.setdefault(run["method"], {}).setdefault(run["layers"], []).append(values)
    # Only the methods of the sweep: those run at more than one depth.
    swept = [m for m in METHOD_NAMES if len(points.get(m, {})) > 1]
    if not swept:
        return False
    labels = runs[0]["labels"]
    teacher = score(names, labels, runs[0]["teacher_logits"])
    baseline = majority_scores(names, labels, spec.num_labels)
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for axis, metric in zip(axes[0], names):
        for method, style in zip(swept, ("o--", "s-", "^-.", "d:", "v-", "x--")):
            depths = sorted(points[method])
            scores = [[100 * v[metric] for v in points[method][d]] for d in depths]
            seeds = "/".join(str(len(s)) for s in scores)
            axis.errorbar(depths, [np.mean(s) for s in scores], [np.std(s) for s in scores],
                          fmt=style, capsize=3,
                          label=f"{METHOD_NAMES[method]} (seeds {seeds})")
        axis.axhline(100 * teacher[metric], color="gray", linestyle=":", label="teacher")
        axis.axhline(100 * baseline[metric], color="black", linestyle=":",
                     label="majority class")
        axis.set_xlabel("student layers")
        axis.set_ylabel(f"dev {metric} (%)")
        axis.set_xticks(sorted({r["layers"] for r in runs}))
        axis.set_title(f"{task.upper()}: student depth, dev {metric}")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--sweep_task", default="mrpc")
    parser.add_argument("--bootstrap_samples", type=int, default=2000)
    args = parser.parse_args()
    lines = ["# Study tables", "", "Written by scripts/summarize_study.py; mean ± std over "
             "seeds; 95% intervals from a paired bootstrap over dev examples.", ""]
    sweep_runs = []
    for task_dir in sorted(glob.glob(os.path.join(args.out, "*"))):
        if not os.path.isdir(task_dir):
            continue
        task = os.path.basename(task_dir)
        runs = load_runs(task_dir)
        if not runs:
            continue
        layers = max(r["layers"] for r in runs)
        mixed = other_teacher_runs(runs)
        if mixed:
            lines += [f"**Warning:** {task} runs {', '.join(mixed)} distilled another "
                      "teacher than the first run; rerun them with the same teacher.", ""]
        lines += task_table(task, runs, layers, args.bootstrap_samples)
        lines += teacher_line(task_dir, task_spec(task).metrics[0])
        if task == args.sweep_task:
            sweep_runs = runs
            lines += depth_table(task, runs, args.bootstrap_samples)
    table_path = os.path.join(args.out, "study_tables.md")
    with open(table_path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"Wrote {table_path}")
    figure = os.path.join(args.out, "student_depth.png")
    if sweep_runs and depth_figure(sweep_runs, args.sweep_task, figure):
        print(f"Wrote {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
