# Task distillation of the configured `students`, from the teacher's cached logits, once per seed
# (glueslim.runs). Every student goes through the one `glueslim distill` command (tinybert.smk's too):
# `init` (the teacher's layers, or a checkpoint) and `arch` name its builder; its loss set is the prediction
# KD (`prediction`, alpha, T) after an optional stage of `intermediate` losses, on augmented rows with
# `augment`, and on the transfer set (the task's training texts beyond the cap, labelled by the teacher) with
# `transfer`; a no-KD twin is alpha 0.


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


rule transfer_set:
    input:
        data="results/data/{task}",
        uncapped="results/data-uncapped/{task}",
        teacher="results/models/teacher/{task}",
    output:
        directory("results/transfer/{task}"),
    log:
        log_file("transfer_set", "task"),
    benchmark:
        benchmark_file("transfer_set", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=GPU),
    params:
        args=lambda w: flags(
            max_examples=transfer_cap(w.task),
            seed=config["seed"],
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
            inference_precision=None if config["inference_precision"] == "fp32" else config["inference_precision"],
        ),
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim transfer-set --task {wildcards.task} --data {input.data} --uncapped {input.uncapped}"
            " --teacher-dir {input.teacher} --out {output} --threads {threads} {params.args}",
        )


rule distill_student:
    input:
        unpack(lambda w: student_inputs(w.student, w.task)),
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
