"""Builders of small MAL-shaped CSV files (the columns of the shared 2023 scrape) for offline tests."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

CSV_COLUMNS = ["mal_id", "title", "link", "image_link", "duration", "status", "aired", "episodes", "type",
               "source", "genres", "themes", "demographic", "producers", "studios", "licensors", "voice_actors",
               "staffs", "score", "ranked", "rating", "favorites", "popularity", "members", "platforms",
               "synopsis", "synonyms", "japanese"]
WORDS = ("hero academy space pirate school band robot magic dragon village detective ghost idol "
         "sword summer festival friendship rival tournament island train kingdom cafe").split()


def mal_row(mal_id: int, score: object = "7.5", synopsis: str | None = None, **overrides: object) -> dict:
    """One CSV row with realistic dirty formatting; any column can be overridden."""
    rng = random.Random(mal_id)
    row = {column: "NOT_EXIST" for column in CSV_COLUMNS}
    row.update({
        "mal_id": str(mal_id), "title": f"Anime{mal_id}", "aired": "Apr 7, 2013 to Sep 29, 2013",
        "episodes": "12", "type": "TV", "source": "Manga", "genres": "['Action', 'Drama']",
        "studios": "Sunrise", "score": score, "rating": "PG-13 - Teens 13 or older",
        "favorites": f"{rng.randint(0, 50000):,}", "members": f"{rng.randint(100, 3000000):,}",
        "image_link": f"https://cdn.example/{mal_id}.jpg",
        "synopsis": synopsis if synopsis is not None else " ".join(rng.choice(WORDS) for _ in range(30)),
    })
    row.update({key: str(value) for key, value in overrides.items()})
    return row


def write_mal_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(path, index=False, compression="gzip" if path.suffix == ".gz" else None)
    return path


def learnable_rows(count: int, seed: int = 0) -> list[dict]:
    """Rows whose score follows their synopsis words, so a model can beat the mean on them."""
    rng = random.Random(seed)
    rows = []
    for mal_id in range(1, count + 1):
        good = rng.random() < 0.5
        words = ["masterpiece", "acclaimed", "beloved"] if good else ["boring", "generic", "forgettable"]
        synopsis = " ".join(rng.choice(WORDS + words * 3) for _ in range(30))
        score = f"{rng.uniform(7.5, 9.0) if good else rng.uniform(4.0, 6.0):.2f}"
        rows.append(mal_row(mal_id, score=score, synopsis=synopsis))
    return rows
