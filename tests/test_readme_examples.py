"""The README's "Your own model and countries" examples, run exactly as written.

Each fenced block after a ``<!-- readme-example NAME: FILE -->`` marker is written to FILE; the block
after ``<!-- readme-example NAME: run -->`` is the command, run in the same folder as a dry run (the
test adds ``-s <Snakefile> -n``, and runs the venv's snakemake). The folder is laid out as the README
assumes: config.yaml beside the user's files, the data mirror at ../shared/culturespa, and the model
at ~/models/my-model (HOME is a temporary folder holding a tiny random Llama with SmolLM2's
tokenizer).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

MARKER = re.compile(r"<!-- readme-example ([\w-]+): ([\w.-]+) -->\n```\w*\n(.*?)```", re.S)


def readme_examples() -> dict[str, dict[str, str]]:
    """example name -> {file name or 'run': block text}, from README.md."""
    out: dict[str, dict[str, str]] = {}
    for name, what, text in MARKER.findall((REPO / "README.md").read_text()):
        out.setdefault(name, {})[what] = text
    return out


def test_the_readme_has_both_examples():
    examples = readme_examples()
    assert set(examples) == {"own-model", "add-country"}
    assert set(examples["own-model"]) == {"my.yaml", "run"} and set(examples["add-country"]) == {"mexico.yaml", "run"}


def tiny_llama(folder, tokenizer_dir):
    """A random 2-layer Llama (hidden size 64) saved with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, data_dir, smollm2_path):
    """root/work (the user's folder: config.yaml and the README's files), root/shared/culturespa (the
    mirror), root/home/models/my-model (the model)."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    (work / "config").mkdir()
    shutil.copy(REPO / "config/demo.yaml", work / "config/demo.yaml")
    (root / "shared").mkdir()
    (root / "shared/culturespa").symlink_to(data_dir)
    tiny_llama(root / "home/models/my-model", smollm2_path)
    for example in readme_examples().values():
        for name, text in example.items():
            if name != "run":
                (work / name).write_text(text)
    return root


def command(text: str, snakemake_bin: str, *extra: str) -> list[str]:
    """The README's command line, with the venv's snakemake, the workflow's Snakefile and ``extra``."""
    words = shlex.split(text.replace("\\\n", " "))
    assert words[0] == "snakemake", text
    return [snakemake_bin, *words[1:], "-s", str(REPO / "Snakefile"), *extra]


def run_in(workspace, cmd, home=None, timeout=600):
    env = {**os.environ, "HOME": str(home or workspace / "home")}
    return subprocess.run(cmd, cwd=workspace / "work", env=env, capture_output=True, text=True, timeout=timeout)


def test_own_model_example_dry_run(workspace, snakemake_bin):
    run = readme_examples()["own-model"]["run"]
    proc = run_in(workspace, command(run, snakemake_bin, "-n"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "rule finetune_joint:" in out and "results/my-model/figures/figure1_alignment.png" in out
    assert "This was a dry-run" in out


def test_own_model_example_runs_a_real_model_job(workspace, snakemake_bin):
    """One model job with the model the README registers at ~/models/my-model: the culture-unaware
    answers to a question pool cut to one question per topic (an extra config file: the paper's
    1,000 per topic would take long even for a tiny model)."""
    small = workspace / "work" / "small.yaml"
    small.write_text("questions:\n  source: released\n  per_topic: 1\n")
    target = "results/my-model/answers/released/culture_unaware/none.jsonl"
    run = readme_examples()["own-model"]["run"].replace("snakemake paper", f"snakemake {target}")
    proc = run_in(workspace, command(run.replace("my.yaml", "my.yaml small.yaml"), snakemake_bin))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the job's model input is the folder ~/models/my-model expanded
    assert f"{workspace / 'home/models/my-model'}" in out
    records = (workspace / "work" / target).read_text().splitlines()
    assert len(records) == 13


def test_arguments_in_the_wrong_order_fail_as_the_readme_says(workspace, snakemake_bin):
    wrong = "snakemake --cores 4 --configfile config.yaml my.yaml --config data_mirror=../shared/culturespa paper"
    proc = run_in(workspace, command(wrong, snakemake_bin, "-n"))
    assert proc.returncode != 0 and "Unparsable value: 'paper'" in proc.stdout + proc.stderr


def test_add_country_example_dry_run(workspace, snakemake_bin):
    run = readme_examples()["add-country"]["run"]
    proc = run_in(workspace, command(run, snakemake_bin, "-n"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "results/my-model/answers/generate/culture_aware/MEX.jsonl" in out
    assert "results/my-model/sft/specific-crqpc-culture_aware-100/MEX/adapter" in out
    # the overlay kept the catalogue: the README's config adds MEX, it does not replace USA
    assert yaml.safe_load((workspace / "work/mexico.yaml").read_text())["countries"][0] == "USA"


def test_a_missing_local_model_folder_stops_before_any_job(workspace, snakemake_bin, tmp_path):
    """The README's own-model example with HOME pointing where ~/models/my-model does not exist."""
    run = readme_examples()["own-model"]["run"]
    proc = run_in(workspace, command(run, snakemake_bin, "-n"), home=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'models.my-model.path' (run_models[0]): local model folder '~/models/my-model'" in out
    assert f"({tmp_path}/models/my-model) does not exist" in out
    assert "rule " not in out and "localrule " not in out  # no job was scheduled
