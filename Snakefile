# glueslim: fine-tune a BERT-family teacher on GLUE, compress it, evaluate and profile every model,
# and render one HTML leaderboard.   snakemake --cores 8 --resources gpu=1
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from glueslim.config import by_name, check_config, check_schema, config_file_problem, retype_cli_values  # noqa: E402
from glueslim.data import check_local_copy, resolve_glue_dir  # noqa: E402
from glueslim.errors import UserError  # noqa: E402
from glueslim.runs import add_twins, check_runs  # noqa: E402

# The workflow's config.yaml is read here (below): a broken one is named before Snakemake's own loader
# reports it without the file's name. Files given with --configfile are read by Snakemake's command line
# before this file runs, so their errors are Snakemake's ("Config file is not valid JSON or YAML").
CONFIG_FILE = os.path.join(workflow.basedir, "config.yaml")
if os.path.exists(CONFIG_FILE) and (problem := config_file_problem(CONFIG_FILE)):
    sys.exit(f"glueslim: {problem}")


configfile: CONFIG_FILE


# every problem on one line (key path, value, what was expected), before any job starts
try:
    retype_cli_values(config, dict(workflow.config_settings.config))  # --config 'finetune={"epochs": 2}'
    check_schema(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))
    validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults
    check_config(config)  # everything a schema cannot check: glueslim.config
    check_runs(config)  # seeds, twins, ablation rows, published links: glueslim.runs
    if glue_dir := resolve_glue_dir(config["data"]["glue_dir"]):
        check_local_copy(glue_dir, config["tasks"])  # every configured task's train and dev file
except UserError as e:
    sys.exit(f"glueslim: {e}")
by_name(config)  # students, baselines, tinybert.students: dicts by name from here on
add_twins(config)  # students with twin: true get their no-KD twin <name>-nokd


# every job reads tokenized texts from here when another job already tokenized them with the same tokenizer
# (glueslim.tokens.tokenize): each task's splits are tokenized once per tokenizer, not once per job
os.environ.setdefault("GLUESLIM_TOKEN_CACHE", "results/tokens")


report: "workflow/report/workflow.rst"  # snakemake --report: the description above the categories


include: "workflow/rules/common.smk"
include: "workflow/rules/args.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/tinybert.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.leaderboard.output,
