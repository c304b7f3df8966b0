rule convert_gguf_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/models/{model}/convert.log",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        gguf=lambda wildcards: config["models"][wildcards.model]["gguf"],
    script:
        "../scripts/convert_model.py"
