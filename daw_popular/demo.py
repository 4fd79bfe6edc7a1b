"""`daw-popular demo`: the simulator and the service together, with URLs to try."""

from __future__ import annotations

import argparse
import dataclasses
from urllib.parse import quote

from . import app as service_app
from .config import Settings
from .sim import Store, start_simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of both servers")
    parser.add_argument("--port", type=int, default=8080, help="port of the service")
    parser.add_argument(
        "--sim-port", type=int, default=0, help="port of the simulator (default: any free)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the generated data")
    parser.add_argument("--users", type=int, default=10, help="generated users")
    parser.add_argument("--products", type=int, default=20, help="generated products")


def example_users(store: Store, count: int = 3) -> list[str]:
    """Usernames worth trying: those with purchases first."""
    buyers = {purchase["username"] for purchase in store.purchases}
    names = [user["username"] for user in store.users]
    return ([n for n in names if n in buyers] + [n for n in names if n not in buyers])[:count]


async def run(args: argparse.Namespace) -> None:
    store = Store.generate(seed=args.seed, users=args.users, products=args.products)
    with service_app.stop_signals() as stopping:
        sim = await start_simulator(store, host=args.host, port=args.sim_port)
        settings = dataclasses.replace(Settings(), host=args.host, port=args.port, upstream=sim.url)
        app, server = await service_app.start(settings)
        base = f"http://{args.host}:{server.port}/api/recent_purchases/"
        lines = [
            f"simulator (upstream): {sim.url}/api/users",
            f"service:              http://{args.host}:{server.port}/",
            "try:",
            *(f"  curl -i {base}{quote(name, safe='')}" for name in example_users(store)),
            f"  curl -i {base}No.Such.User   (unknown user: 404)",
            "Ctrl-C stops both.",
        ]
        print("\n".join(lines), flush=True)
        await stopping.wait()

    async def stop() -> None:
        await app.close()
        await sim.close()

    await service_app.shut_down(server, settings.shutdown_grace, on_stop=stop)
