# Task distillation of the configured `students` (DistilBERT- and ALBERT-style), from the teacher's cached
# logits. Every student goes through the one `glueslim distill` command (tinybert.smk's too): `arch` names
# its builder, the loss is DistilBERT's prediction KD (T^2 KL against the teacher, hard labels 1 - alpha).


rule teacher_outputs:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
    output:
        "results/teacher_outputs/{task}.safetensors",
    log:
        log_file("teacher_outputs", "task"),
    benchmark:
        benchmark_file("teacher_outputs", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=GPU),
    params:
        args=lambda w: flags(
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
            inference_precision=None if config["inference_precision"] == "fp32" else config["inference_precision"],
        ),
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim teacher-outputs --task {wildcards.task} --data {input.data}"
            " --teacher-dir {input.teacher} --out {output} --threads {threads} {params.args}",
        )


rule distill_student:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
        teacher_outputs="results/teacher_outputs/{task}.safetensors",
    output:
        directory("results/models/{student}/{task}"),
    log:
        log_file("distill_student", "student", "task"),
    benchmark:
        benchmark_file("distill_student", "student", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("train", gpu=TRAIN_GPU),
    params:
        args=lambda w: student_args(w.student, w.task),
        checkpoints="results/checkpoints/{student}/{task}",
    shell:
        logged(
            ON_GPUS_DDP,
            "python -m glueslim distill --task {wildcards.task} --data {input.data} --teacher-dir {input.teacher}"
            " --teacher-outputs {input.teacher_outputs} --out {output} --checkpoint-dir {params.checkpoints}"
            " --threads {threads} {params.args}",
        )
