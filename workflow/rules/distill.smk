rule teacher_outputs:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
    output:
        "results/teacher_outputs/{task}.safetensors",
    params:
        args=lambda w: flags(
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
        ),
    conda:
        CONDA_ENV
    log:
        "logs/teacher_outputs/{task}.log",
    benchmark:
        "results/benchmarks/teacher_outputs/{task}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=RES["infer"]["mem_mb"],
        runtime=RES["infer"]["runtime"],
    shell:
        ON_GPUS + "python -m glueslim teacher-outputs --task {wildcards.task} --data {input.data}"
        " --teacher-dir {input.teacher} --out {output} --threads {threads} {params.args} > {log} 2>&1"


rule distill_student:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
        teacher_outputs="results/teacher_outputs/{task}.safetensors",
    output:
        directory("results/models/{student}/{task}"),
    params:
        args=lambda w: flags(
            name=w.student,
            arch=config["students"][w.student]["arch"],
            embedding_size=config["students"][w.student]["embedding_size"],
            num_layers=config["students"][w.student]["num_layers"],
            layer_map=config["students"][w.student]["layer_map"],
            alpha=config["students"][w.student]["alpha"],
            temperature=config["students"][w.student]["temperature"],
            seed=config["seed"],
            device=config["device"],
            **recipe(w.task, config["students"][w.student]["train"]),
            **TRAIN_PRECISION,
        ),
        checkpoints="results/checkpoints/{student}/{task}",
    conda:
        CONDA_ENV
    log:
        "logs/distill_student/{student}/{task}.log",
    benchmark:
        "results/benchmarks/distill_student/{student}_{task}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    shell:
        ON_GPUS_DDP + "python -m glueslim distill --task {wildcards.task} --data {input.data} --teacher-dir {input.teacher}"
        " --teacher-outputs {input.teacher_outputs} --out {output} --checkpoint-dir {params.checkpoints}"
        " --threads {threads} {params.args} > {log} 2>&1"
