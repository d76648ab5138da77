"""Built-in simulator plugins of sbi-gen (installed as ``sbi_gen_simulators``).

Each module is registered through the ``sbi_gen`` entry-point group, exactly
like a third-party plugin; the core never imports them by name.
"""
