"""Every bad input a user can give: one 'error:' line, exit code 2, no files left behind."""

import os

import pytest

from conftest import TINY, tiny_teacher, write_bpe_tokenizer
from kd_keras import encoders, models, tokenization
from kd_keras.data.synthetic import synthetic_vocab
from kd_keras.data.vocab import write_vocab
from test_end_to_end import TINY_RUN, run_cli, run_cli_batch

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
MRPC_ROWS = "".join(f"{i % 2}\t{i}\t{i + 100}\tw{i} w2 w4\tw{i + 1} w3\n" for i in range(12))


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    """A saved tiny teacher, pretrained-student folders that do not fit it, GLUE dirs."""
    root = tmp_path_factory.mktemp("cli_inputs")
    paths = {name: str(root / name) for name in
             ("teacher", "four_heads", "other_vocab", "good", "malformed", "empty", "none",
              "own", "roberta")}
    models.save_model(tiny_teacher(), tokenizer, paths["teacher"])
    os.makedirs(paths["roberta"])
    bpe = tokenization.load_tokenizer(write_bpe_tokenizer(paths["roberta"]), paths["roberta"])
    encoders.save(encoders.build(encoders.EncoderConfig(
        "roberta", len(bpe), 48, 2, 3, 60, max_positions=66, type_vocab_size=1,
        pad_token_id=bpe.pad_token_id, num_labels=2)), paths["roberta"], bpe)
    four_heads = models.build_model(models.bert_config(
        len(synthetic_vocab()), 2, num_layers=2, **dict(TINY, num_heads=4)), seed=2)
    models.save_model(four_heads, tokenizer, paths["four_heads"])
    renamed = [f"x{t}" if t.startswith("w") else t for t in synthetic_vocab()]
    vocab = root / "other_vocab.txt"
    write_vocab(str(vocab), renamed)
    models.save_model(tiny_teacher(num_layers=2), tokenization.load_tokenizer(str(vocab), str(root)),
                      paths["other_vocab"])
    for name, train, dev in (("good", MRPC_ROWS, MRPC_ROWS),
                             ("malformed", MRPC_ROWS + "1\tonly three\tcolumns\n", MRPC_ROWS),
                             ("empty", MRPC_ROWS, "")):
        os.makedirs(os.path.join(paths[name], "MRPC"))
        for split, rows in (("train", train), ("dev", dev)):
            with open(os.path.join(paths[name], "MRPC", f"{split}.tsv"), "w") as handle:
                handle.write(MRPC_HEADER + rows)
    os.makedirs(paths["none"])
    os.makedirs(paths["own"])
    for name, content in OWN_FILES.items():
        with open(os.path.join(paths["own"], name), "wb") as handle:
            handle.write(content)
    return paths


def own(folders, train, *extra, dev="good.csv"):
    return [f"--train_file={folders['own']}/{train}", f"--dev_file={folders['own']}/{dev}",
            "--text_fields=text", "--label_field=label", "--teacher=tiny",
            "--max_seq_length=32", *extra]


OWN_FILES = {"good.csv": b"text,label\nw2 w4,yes\nw1 w3,no\n",
             "tabs.csv": b"text\tlabel\nw2 w4\tyes\n",
             "empty_text.csv": b"text,label\nw2 w4,yes\nw1,no\n,yes\n",
             "new_label.csv": b"text,label\nw2,maybe\n",
             "latin1.csv": b"text,label\nw2,yes\nw\xe9,no\n",
             "one_label.csv": b"text,label\nw2,yes\nw4,yes\n",
             "twice.csv": b"text,text,label\nw2,w4,yes\nw1,w3,no\n",
             "header_only.csv": b"text,label\n"}


def mrpc(folders, data_dir, *extra):
    return ["--task=mrpc", f"--teacher={folders['teacher']}", "--teacher_finetuned",
            f"--data_dir={folders[data_dir]}", "--max_seq_length=32", "--batch_size=4",
            "--epochs=1", "--epochs_per_stage=1", *extra]


CASES = {
    "unknown task": (lambda f: [*TINY_RUN, "--task=squad"], "Unknown task 'squad'"),
    "unknown schedule": (lambda f: [*TINY_RUN, "--schedule=fast"], "Unknown schedule 'fast'"),
    "unknown strategy": (lambda f: [*TINY_RUN, "--distribution_strategy=magic"],
                         "Unknown distribution strategy"),
    "missing data": (lambda f: mrpc(f, "none"), "file not found"),
    "no data source": (lambda f: ["--task=mrpc", f"--teacher={f['teacher']}",
                                  "--use_tfds=false"], "pass --data_dir"),
    "malformed tsv": (lambda f: mrpc(f, "malformed"), "train.tsv:14: expected 5"),
    "empty split": (lambda f: mrpc(f, "empty"), "dev split of task 'mrpc' has no examples"),
    "layers do not divide": (lambda f: [*TINY_RUN, "--student_layers=3"], "must divide"),
    "heads differ": (lambda f: mrpc(f, "good", f"--student={f['four_heads']}"),
                     "equal head counts"),
    "vocab differs": (lambda f: mrpc(f, "good", f"--student={f['other_vocab']}"),
                      "student's vocabulary (97 tokens) differs"),
    "nan loss": (lambda f: mrpc(f, "good", "--schedule=kd", "--learning_rate=1e9"),
                 "loss became NaN or infinite"),
    "task and own data": (lambda f: own(f, "good.csv", "--task=mrpc"), "either --task"),
    "own data missing column": (lambda f: own(f, "good.csv", "--text_fields=sentence"),
                                "no column 'sentence'; the header row has 'text', 'label'"),
    "own data wrong delimiter": (lambda f: own(f, "tabs.csv"), "looks tab-separated"),
    "own data empty text": (lambda f: own(f, "empty_text.csv"),
                            "empty_text.csv:4: empty text in 'text'"),
    "own data unseen dev label": (lambda f: own(f, "good.csv", dev="new_label.csv"),
                                  "new_label.csv:2: label 'maybe' never appears"),
    "own data not utf-8": (lambda f: own(f, "latin1.csv"), "latin1.csv:3: not UTF-8 text"),
    "own data one label": (lambda f: own(f, "one_label.csv"), "at least two labels"),
    "own data column named twice": (lambda f: own(f, "twice.csv"),
                                    "twice.csv:1: the header names the column 'text' 2 times"),
    "own data header only": (lambda f: own(f, "good.csv", dev="header_only.csv"),
                             "header_only.csv: no rows to read below the header"),
    "unlabelled copies for finetune": (
        lambda f: [*TINY_RUN, "--schedule=finetune", "--augment=2"],
        "--augment copies get them only with --augment_labels=source"),
    "text signature for a BPE student": (
        lambda f: mrpc(f, "good", "--text_signature=on") + [f"--teacher={f['roberta']}"],
        "--text_signature=on: the SavedModel's raw-text signature tokenizes with WordPiece"),
}


@pytest.fixture(scope="module")
def results(folders, tmp_path_factory):
    """Every case run once, all in one process (run_cli_batch: TensorFlow imported once),
    each with a model_dir of its own that does not exist yet."""
    root = tmp_path_factory.mktemp("cases")
    runs = {case: [*make_flags(folders), f"--model_dir={root / str(k) / 'run'}"]
            for k, (case, (make_flags, _)) in enumerate(CASES.items())}
    found = run_cli_batch(*runs.values(), check=False)
    return {case: (result, root / str(k) / "run")
            for k, (case, result) in enumerate(zip(runs, found))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, results):
    _, message = CASES[case]
    result, model_dir = results[case]
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not model_dir.exists()


def test_a_bad_input_exits_2_from_its_own_process(folders, tmp_path):
    """The batch above runs the cases in one process; here one runs as a user runs it."""
    model_dir = tmp_path / "run"
    result = run_cli(*own(folders, "latin1.csv"), f"--model_dir={model_dir}", check=False)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        f"error: {folders['own']}/latin1.csv:3: not UTF-8 text (byte 0xe9); save the file as "
        "UTF-8 and run again."]
    assert not model_dir.exists()


def test_error_keeps_what_an_existing_model_dir_held(folders, tmp_path):
    (tmp_path / "earlier.txt").write_text("kept")
    result = run_cli(*mrpc(folders, "none"), f"--model_dir={tmp_path}", check=False)
    assert result.returncode == 2
    assert (tmp_path / "earlier.txt").read_text() == "kept"
    assert not (tmp_path / "config.json").exists()
