"""Command line tools: ``python -m culturespa show-prompt``, ``snapshot``, ``render-snapshot`` and ``run-time``
(``culturespa.snapshot``: a finished run's tidy results, and every figure and table rendered from them).

``show-prompt`` prints the system and user prompt the workflow sends for one method, culture and
question, built by the same code the workflow runs (``methods.build_prompts``) from the same
configuration and data:

* configuration layered as Snakemake layers it: the workflow's ``config.yaml``, then each
  ``--configfile`` in order (mappings merged key by key, lists and scalars replaced), then each
  ``--config KEY=VALUE``; then the schema's defaults, the schema and ``config.check_config``. A
  VALUE is read as Snakemake reads it (an integer, a float, true/false) or else as YAML, so
  ``null``, ``[USA, MEX]`` and ``{a: 1}`` work; a dotted KEY sets a nested key
  (``questions.near_duplicate_threshold=null``: an extension, Snakemake's ``--config`` has none);
* data fetched as the workflow fetches it: into ``resources/culturespa/`` under ``--directory``
  (default: here), from ``data_mirror`` or ``data_base_url``, checksum-verified (``fetch.ensure_file``).

``--item`` is a WVS evaluation item (``Q1`` ... ``Q259``, ``Q234A``) for the evaluation prompts of
every method, or a question-pool id (``T03-00017``: topic 3, the 18th question of that topic) for the
step-2 prompts (culture_unaware, culture_aware, cross_culture; the CCT training data uses the same
prompts) and for ``--method question_generation``, the step-1 prompt that produced the question. A pool
id is looked up in the run's pool (``results/{model}/questions/{source}/pool.jsonl``, model: ``--model``
or the first of ``run_models``) when it exists; otherwise, for ``questions.source: released``, in the
authors' released questions passed through the configured filters (any kept question, whether or not
a small ``questions.per_topic`` samples it). Self-alignment (P3) needs WVS items: its examples are
other WVS questions answered with the country's survey majority.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from . import methods
from .config import SCHEMA_PATH, check_config, validate_schema
from .errors import ConfigError, CultureSPAError, DataFileError

log = logging.getLogger(__name__)

WORKFLOW_DIR = Path(__file__).resolve().parent.parent
QUESTION_GENERATION = "question_generation"
POOL_METHODS = (methods.CULTURE_UNAWARE, methods.P1, methods.P2)


# --- configuration, layered as Snakemake layers it --------------------------------------------


def merge(base: dict, overlay: Mapping) -> dict:
    """``overlay`` into ``base`` in place, as Snakemake's ``update_config``: mappings merged key by
    key, everything else (lists included) replaced."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_value(text: str) -> Any:
    """A ``--config`` value: an integer, a float or a boolean as Snakemake reads them, else YAML."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("True", "true", "False", "false"):
        return text in ("True", "true")
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text


def parse_overrides(entries: Sequence[str]) -> dict:
    """``KEY=VALUE`` entries as a nested mapping (a dotted key nests)."""
    out: dict = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"--config {entry!r}: expected KEY=VALUE")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--config {entry!r}: {part} is set to a value and used as a mapping")
        node[leaf] = parse_value(value)
    return out


def apply_defaults(config: dict, schema: Mapping) -> dict:
    """Fill in the schema's ``default`` values, as Snakemake's ``validate`` does."""
    for key, sub in (schema.get("properties") or {}).items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and "properties" in sub:
            apply_defaults(config[key], sub)
    return config


def load_config(configfiles: Sequence[str | Path] = (), overrides: Sequence[str] = (), workdir: str | Path = ".") -> dict:
    """The workflow's config.yaml, each configfile, then the overrides; defaults filled, checked."""
    config: dict = {}
    for path in [WORKFLOW_DIR / "config.yaml", *configfiles]:
        try:
            layer = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"--configfile {path}: cannot read it ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"--configfile {path}: not valid YAML ({e})") from None
        if not isinstance(layer, dict):
            raise ConfigError(f"--configfile {path}: expected a mapping of config keys")
        merge(config, layer)
    merge(config, parse_overrides(overrides))
    apply_defaults(config, yaml.safe_load(SCHEMA_PATH.read_text()))
    validate_schema(config)
    check_config(config, workdir)
    return config


# --- the prompt -------------------------------------------------------------------------------


def _data(rel: str, config: Mapping, workdir: Path) -> Path:
    from .fetch import ensure_file

    return ensure_file("culturespa", rel, config, workdir)


def pool_record(qid: str, config: Mapping, workdir: Path, model: str | None = None) -> dict:
    """The kept pool question ``qid`` of the run (see the module docstring for where it is looked up)."""
    from . import filters, io
    from .filters import RELEASED_FILE
    from .wvs import load_items

    source = config["questions"]["source"]
    model = model or (config.get("run_models") or [None])[0]
    pool = workdir / "results" / str(model) / "questions" / source / "pool.jsonl"
    if pool.is_file():
        found = [r for r in io.read_jsonl(pool) if r["qid"] == qid]
        if not found:
            raise DataFileError(f"--item {qid}: not in the run's question pool {pool}")
        return found[0]
    if source != "released":
        raise DataFileError(
            f"--item {qid}: no question pool at {pool} yet (questions.source: generate); run step 1 first, or pass "
            "--model for another run's pool"
        )
    raw = [_data(f"data/Meta-Llama-3-8B-Instruct/{RELEASED_FILE.format(topic=t)}", config, workdir) for t in range(13)]
    records = filters.load_released_pool(raw[0].parent)
    if qid not in {r["qid"] for r in records}:
        raise DataFileError(f"--item {qid}: no such question in the released pool (ids run T00-00000 ... T12-00999)")
    wvs = _data("data/wvs_questions.json", config, workdir)
    kept, report = filters.filter_pool(records, load_items(wvs), config["questions"]["near_duplicate_threshold"],
                                       exact_reference=[it.text for it in load_items(wvs, evaluation_only=False)])
    for rec in kept:
        if rec["qid"] == qid:
            return rec
    why = next((d for d in report.dropped if d.get("qid") == qid), {})
    raise DataFileError(f"--item {qid}: dropped from the pool by the filters ({why.get('stage', '?')}: "
                        f"{why.get('why', '')})")


def show_prompt(method: str, country: str | None, item: str, config: Mapping, workdir: str | Path = ".",
                model: str | None = None, order: str = "original") -> dict:
    """{"system": ..., "user": ...} the workflow sends for ``method``, ``country`` and ``item``
    (a WVS item with its options listed in ``order``)."""
    from . import filters, io, prompts
    from .cultures import catalogue_from_config
    from .survey import Survey
    from .wvs import load_items

    workdir = Path(workdir)
    known = list(methods.METHODS) + [QUESTION_GENERATION]
    if method not in known:
        raise ConfigError(f"--method {method!r}: one of {', '.join(known)}")
    catalogue = catalogue_from_config(config)
    culture = None
    if method not in methods.PERSONA_FREE and method != QUESTION_GENERATION:
        if not country:
            raise ConfigError(f"--method {method} needs --country (one of {', '.join(catalogue)})")
        if country not in catalogue:
            raise ConfigError(f"--country {country}: not under 'cultures' (known: {', '.join(catalogue)})")
        culture = catalogue[country]
        if country not in (config.get("countries") or catalogue):
            log.warning("%s is not among the run's countries: the workflow does not ask as %s", country, country)
    survey = Survey.load(_data("data/wvs_questions.json", config, workdir),
                         _data("data/proportions_group_by_country.json", config, workdir))
    similarity = (methods.load_similarity(_data("data/country_similarity.json", config, workdir))
                  if method in methods.CROSS_CULTURE else None)
    if item in survey.index:
        if method == QUESTION_GENERATION:
            raise ConfigError(f"--method {QUESTION_GENERATION} shows how a pool question was asked for: "
                              "--item must be a pool id (T03-00017)")
        examples = (io.read_json(_data("data/self_alignment_examples.json", config, workdir))
                    if method in (methods.P3, methods.P1_P3, methods.P2_P3) else None)
        chat = methods.build_prompts(method, [survey.items[survey.index[item]]], culture, survey,
                                     list(catalogue.values()), examples, order=order,
                                     order_seed=config["evaluation"]["order_seed"], similarity=similarity)[0]
        return {"system": chat.system, "user": chat.user}
    if item in {it.qid for it in load_items(_data("data/wvs_questions.json", config, workdir), evaluation_only=False)}:
        raise ConfigError(f"--item {item}: a WVS question outside the 259 evaluation items (Q260-Q290, Q223)")
    record = pool_record(item, config, workdir, model)
    if method == QUESTION_GENERATION:
        if not record.get("prompt"):
            raise DataFileError(f"--item {item}: the pool record keeps no generation prompt")
        return {"system": prompts.SYSTEM_QUESTION_GENERATION, "user": record["prompt"]}
    if method not in POOL_METHODS:
        raise ConfigError(f"--method {method} on a pool question: self-alignment needs a WVS item (its examples are "
                          f"WVS questions); pool questions are asked with {', '.join(POOL_METHODS)}")
    chat = methods.build_prompts(method, filters.to_items([record]), culture, survey, list(catalogue.values()),
                                 similarity=similarity)[0]
    return {"system": chat.system, "user": chat.user}


# --- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m culturespa", description="culturespa command line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show-prompt", help="print the system and user prompt the workflow would send",
                          description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("--method", required=True,
                      help=f"{', '.join(methods.METHODS)}, or {QUESTION_GENERATION} (a pool item's step-1 prompt)")
    show.add_argument("--country", help="culture code (not needed for culture_unaware)")
    show.add_argument("--item", required=True, help="a WVS evaluation item (Q1) or a question-pool id (T03-00017)")
    show.add_argument("--order", default="original", choices=["original", "reversed", "permuted"],
                      help="the option order of a WVS item (evaluation.orders; permuted seeded by evaluation.order_seed)")
    show.add_argument("--json", action="store_true", help='print {"system": ..., "user": ...}')
    show.add_argument("--configfile", nargs="+", action="extend", default=[], metavar="FILE",
                      help="config files layered on config.yaml, in order (as snakemake --configfile)")
    show.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                      help="config overrides, last (as snakemake --config; dotted keys nest)")
    show.add_argument("--directory", "-d", default=".", help="the run's working directory (resources/, results/)")
    show.add_argument("--model", help="the run model whose question pool --item looks up (default: run_models[0])")
    take = sub.add_parser("snapshot", help="copy a finished run's tidy results (what the figures and tables read)")
    take.add_argument("--model", required=True, help="the run model (results/MODEL)")
    take.add_argument("--dest", required=True, help="the snapshot folder (replaced)")
    take.add_argument("--directory", "-d", default=".", help="the run's working directory")
    take.add_argument("--configfile", nargs="*", default=[], help="the config files the run used (copied along)")
    take.add_argument("--note", default="", help="a line for the provenance record (scale, machine)")
    draw = sub.add_parser("render-snapshot", help="every figure and table of the paper from a snapshot, no model, and their HTML report")
    draw.add_argument("snapshot", help="a snapshot folder (python -m culturespa snapshot)")
    draw.add_argument("--directory", "-d", default=".", help="where results/ is written")
    draw.add_argument("--cores", type=int, default=2)
    draw.add_argument("--tables-only", action="store_true", help="the tables only: no figure, no report (seconds)")
    clock = sub.add_parser("run-time", help="wall time per step of a run, from its benchmark TSVs (markdown)")
    clock.add_argument("benchmarks", help="results/benchmarks/MODEL of a run, or a snapshot folder")
    # more Snakemake arguments go after "--" (main splits them off: an argparse REMAINDER would also
    # swallow -d and --cores given after the snapshot folder)
    draw.epilog = "More Snakemake arguments after --, e.g. -- --config data_mirror=../shared/culturespa"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = _parser().parse_args(argv[:cut]), argv[cut + 1:]
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s: %(message)s")
    if args.command in ("snapshot", "render-snapshot", "run-time"):
        from . import runtime, snapshot

        try:
            if args.command == "run-time":
                folder = Path(args.benchmarks)
                folder = folder / snapshot.BENCHMARKS if (folder / snapshot.PROVENANCE).is_file() else folder
                print(runtime.markdown(runtime.step_table(runtime.job_times(folder))), end="")
                return 0
            if args.command == "snapshot":
                record = snapshot.take(args.directory, args.model, args.dest, args.configfile, args.note)
                print(f"{args.dest}: {len(record['files'])} files, {record['benchmarks']} benchmark TSVs, "
                      f"{record['bytes'] / 1e6:.1f} MB, commit {record['commit']}")
                jobs = ", ".join(f"{commit[:12]}: {n}" for commit, n in record["job_commits"].items())
                print(f"jobs per commit: {jobs or 'no job logs found'}")
                return 0
            return snapshot.render(args.snapshot, args.directory, args.cores, extra, args.tables_only)
        except CultureSPAError as e:
            print(f"culturespa error: {e}", file=sys.stderr)
            return 1
    try:
        config = load_config(args.configfile, args.config, args.directory)
        shown = show_prompt(args.method, args.country, args.item, config, args.directory, args.model, args.order)
    except CultureSPAError as e:
        print(f"culturespa error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(shown, ensure_ascii=False))
    else:
        print(f"--- system ---\n{shown['system']}\n--- user ---\n{shown['user']}")
    return 0
