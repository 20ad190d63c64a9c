"""A run of kd_keras, in rooms with one job each (``modes.run`` walks through them):

    context      the run's strategy, seeds, precision and folders (RunContext)
    inputs       the task, its examples (each split read once), tokenizer and features
    training     one Distiller trained over its schedule, with backups and TensorBoard
    teacher      the fine-tuned teacher: found, given, or fine-tuned now
    distillation the student cut or loaded, distilled, the best one kept
    transfer     text without labels: transfer text and augmented copies
    logit_cache  the frozen teacher's logits on the training set, computed once
    inference    logits of a model, and two models timed side by side
    evaluation   dev metrics, speed, attention KL, the majority class
    report       results.json and the table a run prints
    serving      the best student: exported, or labelling a file
    modes        what each --mode runs, after the folder's identity check

model_dir layout:
    config.json        the run configuration
    run_identity.json  what the folder holds (run_identity.py): another run is refused
    teacher/           the fine-tuned teacher (Hugging Face folder, reused by later runs)
    student/           the best student by dev metric (Hugging Face folder)
    backup/            resumable training state (removed when training finishes)
    cache/             tokenized features, teacher logits, compiled steps (JAX)
    logs/teacher, logs/distill   TensorBoard runs
    results.json       metrics, parameter counts, speed, stage history
    dev_predictions.npz  dev labels, teacher and student logits
    export/<version>/  the student SavedModel for TF Serving
"""
