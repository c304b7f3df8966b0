rule convert_gguf_model:
    output:
        directory("resources/models/{model}"),
    params:
        gguf=lambda wildcards: config["models"][wildcards.model]["gguf"],
    log:
        "logs/models/{model}/convert.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/model.yaml"
    script:
        "../scripts/convert_model.py"
