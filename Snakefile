# glueslim: fine-tune a BERT-family teacher on GLUE, compress it, evaluate and profile every model,
# and render one HTML leaderboard.   snakemake --cores 8 --resources gpu=1
import os

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.leaderboard.output,
