# glueslim: fine-tune a BERT-family teacher on GLUE, compress it, evaluate and profile every model,
# and render one HTML leaderboard.   snakemake --cores 8 --resources gpu=1
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from glueslim.config import ConfigError, by_name, check_config, check_schema  # noqa: E402

# every problem on one line (key path, value, what was expected), before any job starts
try:
    check_schema(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))
    validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults
    check_config(config)  # everything a schema cannot check: glueslim.config
except ConfigError as e:
    sys.exit(f"glueslim: {e}")
by_name(config)  # students, baselines, tinybert.students: dicts by name from here on


# every job reads tokenized texts from here when another job already tokenized them with the same tokenizer
# (glueslim.tokens.tokenize): each task's splits are tokenized once per tokenizer, not once per job
os.environ.setdefault("GLUESLIM_TOKEN_CACHE", "results/tokens")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/tinybert.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.leaderboard.output,
