"""Rebuild `demo.sqlite`, the small sample database the bundled demo syncs read.

python -m reverse_etl_assets.demo.make_demo_db
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEMO_DB = Path(__file__).with_name("demo.sqlite")

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"]
_PLANS = ["free", "starter", "pro", "enterprise"]
_PRODUCTS = ["T-shirt", "Mug", "Sticker pack", "Hoodie", "Notebook"]


def build(path: Path = DEMO_DB) -> None:
    rng = random.Random(20261201)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE users (
                id INTEGER PRIMARY KEY, email TEXT NOT NULL, first_name TEXT, last_name TEXT,
                plan TEXT, is_active INTEGER, created_at TEXT, last_updated TEXT NOT NULL);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, product TEXT, quantity INTEGER,
                total_cents INTEGER, ordered_at TEXT NOT NULL);
            """
        )
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for user_id in range(1, 51):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            created = start + timedelta(hours=rng.randrange(0, 24 * 300))
            updated = created + timedelta(hours=rng.randrange(0, 24 * 30))
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    f"{first}.{last}.{user_id}@example.com".lower(),
                    first,
                    last,
                    rng.choice(_PLANS),
                    rng.randrange(2),
                    created.strftime("%Y-%m-%d %H:%M:%S"),
                    updated.strftime("%Y-%m-%d %H:%M:%S"),
                ),
            )
        for order_id in range(1, 121):
            ordered = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 320))
            quantity = rng.randrange(1, 4)
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
                (
                    order_id,
                    rng.randrange(1, 51),
                    rng.choice(_PRODUCTS),
                    quantity,
                    quantity * rng.choice([500, 1200, 2500, 4000]),
                    ordered.strftime("%Y-%m-%d %H:%M:%S"),
                ),
            )
    with sqlite3.connect(path) as db:
        db.execute("VACUUM")


if __name__ == "__main__":
    build()
    print(f"wrote {DEMO_DB}")
