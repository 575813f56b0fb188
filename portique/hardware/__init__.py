"""The turnstile's devices over gpiozero: lock relay, lights, buzzer and the two inputs.

``portique.hardware.config`` (the ``[hardware]`` table) imports nothing but the config schema,
so the
gate's config can name it without loading gpiozero; ``portique.hardware.turnstile`` drives the pins.
"""
