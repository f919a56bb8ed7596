"""Every model preset's family and parameter count, so `xtjax presets` prints without loading JAX or a model.

Counted abstractly (`models.init.abstract`, jax.eval_shape); tests/models/test_preset_table.py recounts every
preset and fails, printing the new table, when a preset or its size changes.
"""

PRESETS = (  # (preset, family, parameters)
    ('bert-base', 'encoder', 109482240),
    ('bert-large', 'encoder', 335141888),
    ('gemma-2-27b', 'gemma2', 27227128320),
    ('gemma-2-2b', 'gemma2', 2614341888),
    ('gemma-2-9b', 'gemma2', 9241705984),
    ('llama-3.1-70b', 'decoder', 70553706496),
    ('llama-3.1-8b', 'decoder', 8030261248),
    ('llama-3.2-1b', 'decoder', 1235814400),
    ('llama-3.2-3b', 'decoder', 3212749824),
    ('mbert-base', 'encoder', 177853440),
    ('mistral-7b', 'decoder', 7248023552),
    ('mt5-base', 't5', 582401280),
    ('mt5-large', 't5', 1229581312),
    ('mt5-small', 't5', 300176768),
    ('mt5-xl', 't5', 3742619648),
    ('mt5-xxl', 't5', 12921057280),
    ('qwen2.5-72b', 'decoder', 72706203648),
    ('qwen2.5-7b', 'decoder', 7615616512),
    ('roberta-base', 'encoder', 124645632),
    ('roberta-large', 'encoder', 355359744),
    ('t5-v1_1-base', 't5', 247577856),
    ('t5-v1_1-large', 't5', 783150080),
    ('t5-v1_1-small', 't5', 76961152),
    ('t5-v1_1-xl', 't5', 2849757184),
    ('t5-v1_1-xxl', 't5', 11135332352),
    ('xlmr-base', 'encoder', 278043648),
    ('xlmr-bench-small', 'encoder', 11549184),
    ('xlmr-large', 'encoder', 559890432),
)
