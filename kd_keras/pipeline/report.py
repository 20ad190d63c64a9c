"""What a run reports: results.json, and the teacher-against-student table it prints."""

from __future__ import annotations

import os
from typing import Dict

from kd_keras import files


def write_results(folder: str, results: Dict) -> str:
    """Writes results.json into ``folder`` atomically; returns its path."""
    path = os.path.join(folder, "results.json")
    files.write_json(path, results, default=float)
    return path


def results_table(results: Dict, main_metric: str) -> str:
    """Teacher vs student, as a plain-text table."""
    rows = [("", "teacher", "student")]
    metric_names = [main_metric] + [m for m in results["student"]["dev"] if m != main_metric]
    metric_rows = [(f"dev {m}", "dev", m) for m in metric_names]
    metric_rows += [(f"{split} {main_metric}", split, main_metric)
                    for split in results["student"] if split.startswith("dev_")]
    for label, split, metric in metric_rows:
        rows.append((label, *(f"{results[who][split][metric]:,.4f}"
                              for who in ("teacher", "student"))))
    for label, key in (("layers", "layers"), ("parameters", "parameters"),
                       ("examples/s", "examples_per_second")):
        values = [results[who][key] for who in ("teacher", "student")]
        rows.append((label, *(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"
                              for v in values)))
    majority = results.get("majority_class")
    if majority:
        rows.append((f"majority class '{majority['label']}', dev {main_metric}", "",
                     f"{majority['dev'][main_metric]:,.4f}"))
    kl = results["student"].get("attention_kl_mean")
    if kl is not None:
        rows.append(("attention KL (mean)", "", f"{kl:.4f}"))
    rows.append(("speed-up", "", f"{results['speedup']:.2f}x"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.rjust(width[i]) if i else cell.ljust(width[i])
                               for i, cell in enumerate(row)) for row in rows)
