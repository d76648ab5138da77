"""Built-in estimator and embedding plugins of sbi-gen (installed as ``sbi_gen_plugins``).

Each module is registered through the ``sbi_gen`` entry-point group, exactly
like a third-party plugin; the core never imports them by name.
"""
