"""``sbi-gen plugins``: the installed plugins and what each registers."""

from __future__ import annotations

import argparse
import json
import sys

from sbi_gen.errors import SbiGenError

__all__ = ["add_parser", "command"]


def add_parser(commands) -> None:
    parser = commands.add_parser("plugins", help="list installed plugins and what they register")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def command(args: argparse.Namespace) -> int:
    from sbi_gen.registry import get_registry

    registry = get_registry()
    conflict = None
    try:
        registry.names("simulator")
    except SbiGenError as error:
        conflict = str(error)
    plugins = registry.describe()
    if args.json:
        print(json.dumps({"plugins": plugins, "error": conflict}, indent=2))
        return 1 if conflict else 0
    for plugin in plugins:
        status = f"FAILED: {plugin['error']}" if plugin["error"] else "ok"
        print(f"{plugin['name']}  ({plugin['distribution']} {plugin['version']}, {plugin['module']})  {status}")
        for kind, names in plugin["registered"].items():
            for name in names:
                spec = registry.spec(kind[:-1], name)
                print(f"    {kind[:-1]:<10} {name:<16} {spec.description}")
    if conflict:
        print(f"error: {conflict}", file=sys.stderr)
        return 1
    return 0
