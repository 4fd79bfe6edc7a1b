"""Command line: `daw-popular serve | sim | demo`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvloop

from . import __version__, config, logs


def _serve(args: argparse.Namespace) -> int:
    from .workers import run

    return run(config.from_args(args))


def _demo(args: argparse.Namespace) -> int:
    from .demo import run

    uvloop.run(run(args))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from .sim.cli import run

    return run(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="daw-popular",
        description="Popular Purchases service of the Discount Ascii Warehouse.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the service against an upstream DAW data API",
        description="Serve GET /api/recent_purchases/{username}. Every option can also be "
        "set as an environment variable DAW_POPULAR_<OPTION>.",
    )
    config.add_arguments(serve)
    serve.set_defaults(func=_serve)

    from .sim.cli import add_arguments as add_sim_arguments

    sim = commands.add_parser(
        "sim",
        help="run the DAW data API simulator (the upstream)",
        description="The DAW data API with the real program's behaviour, quirks included.",
    )
    add_sim_arguments(sim)
    sim.set_defaults(func=_sim)

    from . import demo

    demo_parser = commands.add_parser(
        "demo",
        help="run the simulator and the service together, print URLs to try",
        description="Start the simulator with generated data and the service in front of it.",
    )
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(func=_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "info"), json=getattr(args, "log_json", False))
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
